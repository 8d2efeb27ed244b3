// The state the CPU's pruned search keeps between passes of one layer
// (pruned_assign.cpp): the layer's points sorted by code, so that a cluster's points are
// contiguous rows, and the fixed-point sums of those codes, which the next fused pass
// updates by the rows that moved. A cache: every pass checks it against the codes it is
// given and rebuilds it when they differ, so results never depend on it.
//
// Memory: two sorted copies of the points ((dim + 1) x 4 bytes a point each), the codes,
// distances and new codes (12 bytes a point) and the sums ([k, dim] int64).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "kernels/cpu/cpu_internal.h"
#include "kernels/fixed_point.h"

namespace pgkm::cpu {

struct PrunedCache {
  int64_t k = 0;
  std::vector<uint32_t> codes;        // [n] the codes the copy is sorted by, by point
  std::vector<int64_t> offsets;       // [k + 1] rows of each cluster
  std::vector<uint32_t> points;       // [n] the point of each row
  AlignedFloats xs;                   // [n, dim] the rows' coordinates
  std::vector<float> own;             // [n] each row's distance to its centroid (scratch)
  std::vector<uint32_t> row_codes;    // [n] each row's new code (scratch)
  std::vector<float> brute_dist;      // [n] brute-force passes' distances nobody asked for
  std::vector<uint32_t> next_points;  // the re-sort's target
  AlignedFloats next_xs;
  // The block order of the centroids (prepare_centroids) and the passes it served.
  std::vector<uint32_t> block_order;
  int order_age = 0;
  // Brute-force passes left before the next sample, and the last such wait.
  int passes_to_skip = 0;
  int backoff = 0;
  // The share of the centroids the last pruned pass scored (1 before any).
  double last_scored = 1.0;
  // The sums of the points by `codes` (valid when have_sums) under 2^fp_exponent.
  bool have_sums = false;
  int fp_exponent = 0;
  std::vector<int64_t> sums;
  std::vector<uint64_t> counts;
};

// Makes `cache` the points sorted by `previous`, unless it already is (then nothing is
// done). Invalidates the cached sums when it rebuilds.
void sort_points(int threads, const CpuResidentPoints& points, int64_t k,
                 std::span<const uint32_t> previous, PrunedCache& cache);

// After a pass: the copy sorted by the new codes (cache.row_codes), whose by-point copy
// is `codes`.
void resort_points(int threads, int dim, std::span<const uint32_t> codes, PrunedCache& cache);

// One thread's changes to the cached sums: every row whose code changed moves its
// weight * quantize(x) from the old cluster to the new one. Integers, so adding up the
// threads' changes in any order gives the same sums.
struct SumChanges {
  std::vector<int64_t> sums;    // [k, dim]
  std::vector<int64_t> counts;  // [k]
};

// Records that `row` left cluster `from` for its new code, cache.row_codes[row].
inline void record_move(const CpuResidentPoints& points, const FixedPoint& fp,
                        const PrunedCache& cache, int64_t row, int64_t from, SumChanges& changes) {
  const int dim = points.dim();
  const int64_t to = cache.row_codes[row];
  const int64_t w = points.weights()[cache.points[row]];
  changes.counts[from] -= w;
  changes.counts[to] += w;
  const float* x = cache.xs.get() + row * dim;
  for (int d = 0; d < dim; ++d) {
    const int64_t q = w * fp.quantize(x[d]);
    changes.sums[from * dim + d] -= q;
    changes.sums[to * dim + d] += q;
  }
}

// cache.sums and cache.counts plus every thread's changes, on every thread.
void apply_changes(int threads, std::span<const SumChanges> changes, PrunedCache& cache);

}  // namespace pgkm::cpu
