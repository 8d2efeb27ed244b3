// What one layer's k-means run measured: the statistics that travel with the layer to
// the archive, the report and the wire (engine/layer_record.h lists which go where).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace pgkm {

struct IterationStats {
  int iteration = 0;           // 0-based
  double objective = 0;        // sum of squared errors over all weights after the update
  int64_t empty_before = 0;    // empty clusters after assignment, before resolution
  int64_t empty_after = 0;     // empty clusters after resolution
  int resolution_rounds = 0;   // ipq tries or pg fine-tuning rounds
  double seconds_assign = 0;   // the iteration's first assignment pass
  double seconds_resolve = 0;  // empty-cluster resolution, its reassignments included
  double seconds_update = 0;   // accumulation, means and objective
  // Centroids scored in this iteration's passes over n * K per pass (1: brute force).
  double scored_fraction = 0;
};

struct LayerStats {
  int64_t empty_clusters = 0;  // codes no input vector uses
  double objective = 0;        // final sum of squared errors over all input vectors
  // The same error of the dequantized weight in the source's own units. Equal to
  // `objective` for a plain layer; for an importance-weighted one `objective` is the
  // weighted error (the k-means runs on scaled columns, or on rows counted by their
  // weight) and this the unweighted one.
  double plain_objective = 0;
  int64_t initial_empty = 0;  // empty clusters of the initial state
  int iterations_run = 0;
  int resolution_rounds = 0;   // total over iterations
  double seconds_resolve = 0;  // total over iterations
  // ipq: fairseq stops iterating when its tries run out with clusters still empty.
  bool stopped_early = false;
  std::string stop_reason;
  int64_t distinct_vectors = 0;  // after deduplication
  int64_t clustered_points = 0;  // points k-means ran on (after DWC for pg)
  std::vector<IterationStats> per_iteration;
  double seconds_total = 0;  // wall time of the layer's k-means
  // Where the time went, per phase (seconds): reading and converting the tensor,
  // deduplication, dense weights consolidation (pg), pre-assignment or ipq's
  // initialisation, every iteration's first assignment pass, the updates (with the
  // objective and the final mapping of codes), and writing the archive (rank 0). Empty-
  // cluster resolution is seconds_resolve.
  double seconds_load = 0;
  double seconds_dedup = 0;
  double seconds_consolidation = 0;
  double seconds_preassign = 0;
  double seconds_assign = 0;
  double seconds_update = 0;
  double seconds_write = 0;
  // Centroids scored over all passes / what brute force scores (n * K per pass).
  double scored_fraction = 0;
};

}  // namespace pgkm
