// The communicator seam (docs/ARCHITECTURE.md, "The two seams"): who adds up what.
//
// A layer split over a group of ranks runs the same k-means on every rank; each rank
// assigns its slice of the points, and the group adds up per-centroid sums and counts
// (exact integers, so the total is the same bits in any order) and gathers codes.
// Implementations: SingleProcessCommunicator (here), MPI (dist/mpi_communicator.h),
// NCCL (with the CUDA backend). No MPI or NCCL header is included here.
#pragma once

#include <cstdint>
#include <span>

namespace pgkm {

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;  // 0 .. size()-1
  virtual int size() const = 0;

  // Element-wise sum over all ranks, in place; every rank gets the result.
  virtual void allreduce_sum(std::span<int64_t> data) = 0;
  virtual void allreduce_sum(std::span<uint64_t> data) = 0;
  // Concatenation of every rank's `local` in rank order, on every rank. all.size() must be
  // the sum of the local sizes; each rank's local size is its slice (shard_range below).
  virtual void allgather(std::span<const uint32_t> local, std::span<uint32_t> all) = 0;
  // Copies root's `data` to every rank.
  virtual void broadcast(std::span<std::byte> data, int root) = 0;
  virtual void barrier() = 0;
};

// The one-rank group: every collective is the identity.
class SingleProcessCommunicator final : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  void allreduce_sum(std::span<int64_t>) override {}
  void allreduce_sum(std::span<uint64_t>) override {}
  void allgather(std::span<const uint32_t> local, std::span<uint32_t> all) override;
  void broadcast(std::span<std::byte>, int) override {}
  void barrier() override {}
};

// The contiguous slice [begin, end) of n items that rank `rank` of `size` owns. Slices
// follow rank order and cover 0..n exactly once.
struct ShardRange {
  int64_t begin = 0;
  int64_t end = 0;
  int64_t size() const { return end - begin; }
};
inline ShardRange shard_range(int64_t n, int rank, int size) {
  return {n * rank / size, n * (rank + 1) / size};
}

}  // namespace pgkm
