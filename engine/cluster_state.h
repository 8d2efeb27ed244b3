// The mutable state of one k-means run, shared by the driver (kmeans.cpp) and the
// empty-cluster resolution steps (ipq.cpp, pg_finetune.cpp). Internal to engine/.
#pragma once

#include <cstdint>
#include <vector>

#include "engine/context.h"
#include "engine/points.h"
#include "kernels/backend.h"

namespace pgkm {

class CudaBackend;

// The CUDA backend when `group` can add up its device memory (NCCL on the backend's
// device): sums and counts are then reduced where they were computed. Null otherwise,
// and the sums take the host path (MPI, the CPU backend, one rank).
CudaBackend* device_reduction(Backend& backend, const Communicator& group);

struct ClusterState {
  // `resident` holds this rank's slice `shard` of `points` (all of them for one rank);
  // `group` is the ranks sharing the layer (a SingleProcessCommunicator for one).
  ClusterState(Backend& backend, const ResidentPoints& resident, const PointSet& points,
               const FixedPoint& fp, int64_t k, Communicator& group, ShardRange shard,
               SearchMode search = SearchMode::kPruned);

  Backend& backend;
  const ResidentPoints& resident;
  Communicator& group;
  ShardRange shard;
  const PointSet& points;  // the points k-means runs on (deduplicated, maybe consolidated)
  FixedPoint fp;
  int64_t k;
  int dim;
  SearchMode search;
  CudaBackend* device_reduce;  // device_reduction(backend, group)

  std::vector<float> centroids;       // [k, dim]
  std::vector<uint32_t> codes;        // [points.size()], the same on every rank of the group
  std::vector<uint32_t> local_codes;  // [shard.size()] this rank's assignment
  std::vector<float> local_dist;      // [shard.size()] squared distance (brute-force passes)
  std::vector<int64_t> sums;          // [k, dim] fixed-point sums of the current assignment
  std::vector<uint64_t> counts;       // [k] total weight of the current assignment
  // local_codes hold an assignment (a pass's, or the pre-assignment's), which the pruned
  // search starts from; before that the first pass scores every centroid.
  bool have_codes = false;
  SearchStats search_stats;  // every pass so far

  // Nearest-centroid assignment of every point, then sums and counts for it: each rank
  // assigns its slice, sums and counts are added up over the group (exact integers, so
  // every rank holds the same bits) and the codes are gathered.
  // With device_reduce, the assignment, sums and counts stay on the device until the
  // group has reduced them there (reassign_on_device); local_dist is filled only by
  // brute-force passes on the host (the pruned search is asked for no distances).
  void reassign();
  // Takes `codes` (set by the caller, e.g. the pre-assignment) as the current assignment
  // the next pruned pass starts from.
  void adopt_codes();
  int64_t count_empty() const;
  // Every centroid with a non-zero count becomes the exact mean of its points;
  // an empty cluster keeps its centroid.
  void update_means();

 private:
  void reassign_on_device(CudaBackend& cuda);
};

// Outcome of one iteration's empty-cluster resolution.
struct ResolutionOutcome {
  int rounds = 0;        // ipq tries or pg fine-tuning rounds
  bool gave_up = false;  // ipq: tries ran out with clusters still empty
};

}  // namespace pgkm
