// Split-K planning for the CUDA assignment kernel (see assign_plan.h).
#include "kernels/cuda/assign_plan.h"

#include <algorithm>

#include "core/errors.h"

namespace pgkm::cuda {
namespace {

// At most this many splits: each adds one 64-bit atomicMax per point.
constexpr int64_t kMaxSplits = 64;
// A block's fixed cost (loading its points, re-scoring the winning group, the merge) in
// units of centroids scored, for the wave model below.
constexpr int64_t kBlockOverheadCentroids = 96;
// One block of 8 warps per SM does not hide the shared-memory latency: count at least
// this many blocks per SM when comparing plans.
constexpr int64_t kMinBlocksPerSm = 2;

int64_t ceil_div(int64_t a, int64_t b) {
  return (a + b - 1) / b;
}

}  // namespace

int64_t padded_centroids(int64_t k, int b) {
  const int64_t tile = tile_centroids(b);
  return ceil_div(k, tile) * tile;
}

AssignPlan plan_assign(int64_t n, int64_t k, int b, int64_t sms) {
  PGKM_ASSERT(n >= 1 && k >= 1 && b >= 1 && b <= 32 && sms >= 1);
  AssignPlan plan;
  const int64_t tile = tile_centroids(b);
  plan.padded_k = padded_centroids(k, b);
  plan.point_blocks = ceil_div(n, points_per_block(b));
  const int64_t tiles = plan.padded_k / tile;
  // Useful work over the time the busiest SM needs, for each candidate split; fewer
  // splits win unless more are clearly (2 %) better.
  double best = -1.0;
  for (int64_t s = 1; s <= std::min(tiles, kMaxSplits); ++s) {
    const int64_t tiles_per_split = ceil_div(tiles, s);
    const int64_t splits = ceil_div(tiles, tiles_per_split);
    if (splits != s) continue;  // the same cut as a smaller s
    const int64_t blocks = plan.point_blocks * splits;
    const int64_t waves = std::max<int64_t>(ceil_div(blocks, sms), kMinBlocksPerSm);
    const double capacity = static_cast<double>(waves) * static_cast<double>(sms) *
                            static_cast<double>(tiles_per_split * tile + kBlockOverheadCentroids);
    const double work = static_cast<double>(plan.point_blocks) * static_cast<double>(plan.padded_k);
    const double efficiency = work / capacity;
    if (efficiency > best * 1.02) {
      best = efficiency;
      plan.splits = static_cast<int>(splits);
      plan.split_centroids = tiles_per_split * tile;
    }
  }
  return plan;
}

}  // namespace pgkm::cuda
