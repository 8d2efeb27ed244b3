// AVX2+FMA scoring kernels: brute force over all centroids and a cluster's candidate
// block. Built with -mavx2 -mfma (like candidates_avx2.cpp) and run only after
// cpu_has_avx2_fma(). It uses intrinsics and its own internal functions only, so that no
// AVX2-compiled copy of a shared inline function (a standard-library template, say) can
// be picked by the linker for other code.
//
// Lanes are 8 points of one SoA tile. Each group of 8 centroids gets 8 independent
// accumulators (FMA latency 4 x 2 pipes on Zen 3 and Intel cores), and every
// centroid coordinate is a broadcast load, so the inner loop is FMA-bound.
//
// The argmax is kept cheap: per group only the maximum of the 8 scores is compared
// with the running best (strict >), and only the group index is recorded. At the end
// of the tile the winning group is scored again for each point, now with the 8
// centroids in the lanes; the identical FMA chain gives identical scores, so the
// lowest lane equal to the best score is the lowest winning index.
#include <immintrin.h>

#include <cstdint>

#include "kernels/cpu/assign_kernels.h"

namespace pgkm::cpu {
namespace {

// Best score and the group that produced it first, per point of a tile.
struct TileBest {
  __m256 score;
  __m256i group;
};

// The scores of one group of 8 centroids (cg: [dim][8], hn: their half norms) for the
// 8 points of a tile, into acc; returns each point's maximum over the group. kDim > 0
// fixes the dimension at compile time so the coordinate loop unrolls.
template <int kDim>
[[gnu::always_inline]] inline __m256 score_group(const float* cg, const float* hn, int dim_,
                                                 const float* tile, __m256* acc) {
  const int dim = kDim > 0 ? kDim : dim_;
  // Up to 4 point rows stay in registers across groups. With more, the compiler would
  // spill them and fold every reload into the FMAs (two loads per FMA); hiding the
  // pointer makes it load each row once per group instead.
  const float* x_rows = tile;
  if constexpr (kDim == 0 || kDim > 4) asm("" : "+r"(x_rows));
#pragma GCC unroll 8
  for (int j = 0; j < kGroupSize; ++j)
    acc[j] = _mm256_broadcast_ss(hn + j);
#pragma GCC unroll 32
  for (int d = 0; d < dim; ++d) {
    const __m256 x = _mm256_load_ps(x_rows + d * kTileWidth);
#pragma GCC unroll 8
    for (int j = 0; j < kGroupSize; ++j) {
      acc[j] = _mm256_fmadd_ps(x, _mm256_broadcast_ss(cg + d * kGroupSize + j), acc[j]);
    }
  }
  const __m256 m01 = _mm256_max_ps(acc[0], acc[1]);
  const __m256 m23 = _mm256_max_ps(acc[2], acc[3]);
  const __m256 m45 = _mm256_max_ps(acc[4], acc[5]);
  const __m256 m67 = _mm256_max_ps(acc[6], acc[7]);
  return _mm256_max_ps(_mm256_max_ps(m01, m23), _mm256_max_ps(m45, m67));
}

// Scores all centroid groups against one tile (kDim == 0 reads the dimension from c).
template <int kDim>
TileBest scan_groups(const CentroidSet& c, const float* tile) {
  const int64_t group_stride = int64_t{c.dim} * kGroupSize;
  __m256 best = _mm256_set1_ps(-__builtin_inff());
  __m256i best_group = _mm256_setzero_si256();
  __m256i group = _mm256_setzero_si256();
  const __m256i one = _mm256_set1_epi32(1);
  const float* cg = c.grouped;
  const float* hn = c.half_norms;
  for (int64_t g = 0; g < c.groups; ++g, cg += group_stride, hn += kGroupSize) {
    __m256 acc[kGroupSize];
    const __m256 tmax = score_group<kDim>(cg, hn, c.dim, tile, acc);
    const __m256 improved = _mm256_cmp_ps(tmax, best, _CMP_GT_OQ);
    best = _mm256_max_ps(tmax, best);
    best_group = _mm256_castps_si256(
        _mm256_blendv_ps(_mm256_castsi256_ps(best_group), _mm256_castsi256_ps(group), improved));
    group = _mm256_add_epi32(group, one);
  }
  return {best, best_group};
}

// Lowest index within `group` whose score for point `lane` equals `best`.
template <int kDim>
uint32_t resolve_in_group(const CentroidSet& c, const float* tile, int lane, int64_t group,
                          float best) {
  const int dim = kDim > 0 ? kDim : c.dim;
  const float* cg = c.grouped + group * dim * kGroupSize;
  __m256 acc = _mm256_loadu_ps(c.half_norms + group * kGroupSize);
#pragma GCC unroll 32
  for (int d = 0; d < dim; ++d) {
    const __m256 x = _mm256_broadcast_ss(tile + d * kTileWidth + lane);
    acc = _mm256_fmadd_ps(x, _mm256_load_ps(cg + d * kGroupSize), acc);
  }
  const int equal = _mm256_movemask_ps(_mm256_cmp_ps(acc, _mm256_set1_ps(best), _CMP_EQ_OQ));
  // `equal` is never 0 for finite input: the same chain produced `best`.
  const int j = equal != 0 ? __builtin_ctz(static_cast<unsigned>(equal)) : 0;
  return static_cast<uint32_t>(group * kGroupSize + j);
}

// dist = fma chain of (x_d - c_d)^2 over d, for each lane's chosen centroid.
template <int kDim>
__m256 chosen_distances(const float* rows, int dim_, const float* tile, __m256i codes) {
  const int dim = kDim > 0 ? kDim : dim_;
  const __m256i offsets = _mm256_mullo_epi32(codes, _mm256_set1_epi32(dim));
  __m256 acc = _mm256_setzero_ps();
#pragma GCC unroll 32
  for (int d = 0; d < dim; ++d) {
    const __m256 cd = _mm256_i32gather_ps(rows + d, offsets, 4);
    const __m256 t = _mm256_sub_ps(_mm256_load_ps(tile + d * kTileWidth), cd);
    acc = _mm256_fmadd_ps(t, t, acc);
  }
  return acc;
}

template <int kDim>
void assign_range(const CentroidSet& c, const TileRange& range) {
  const int dim = kDim > 0 ? kDim : c.dim;
  alignas(32) float best[kTileWidth];
  alignas(32) int32_t group[kTileWidth];
  alignas(32) uint32_t codes[kTileWidth];
  alignas(32) float dist[kTileWidth];
  for (int64_t t = range.first; t < range.last; ++t) {
    const float* tile = range.tiles + t * dim * kTileWidth;
    const TileBest tb = scan_groups<kDim>(c, tile);
    _mm256_store_ps(best, tb.score);
    _mm256_store_si256(reinterpret_cast<__m256i*>(group), tb.group);
    for (int lane = 0; lane < kTileWidth; ++lane) {
      codes[lane] = resolve_in_group<kDim>(c, tile, lane, group[lane], best[lane]);
    }
    const __m256i code_vec = _mm256_load_si256(reinterpret_cast<const __m256i*>(codes));
    _mm256_store_ps(dist, chosen_distances<kDim>(c.rows, c.dim, tile, code_vec));
    const int64_t base = t * kTileWidth;
    const int64_t lanes = range.n - base < kTileWidth ? range.n - base : kTileWidth;
    for (int64_t lane = 0; lane < lanes; ++lane) {
      range.codes[base + lane] = codes[lane];
      range.dist[base + lane] = dist[lane];
    }
  }
}

// A cluster's candidate block (slots in key order, not index order) against one tile:
// every group keeps, per point, the lowest original index among its slots at the
// group's maximum; a strictly greater maximum replaces the point's best, an equal one
// keeps the lower index. Exactly the contract's choice, ties and duplicates included,
// with no second scoring pass (blocks are a few groups long).
template <int kDim>
void score_tile(const CandidateBlock& c, int64_t groups, const float* tile, uint32_t* codes,
                float* dist) {
  const int64_t group_stride = int64_t{c.dim} * kGroupSize;
  const __m256i none = _mm256_set1_epi32(static_cast<int32_t>(kNoCandidate));
  __m256 best = _mm256_set1_ps(-__builtin_inff());
  __m256i best_id = none;
  const float* cg = c.grouped;
  const float* hn = c.half_norms;
  const uint32_t* ids = c.ids;
  for (int64_t g = 0; g < groups; ++g, cg += group_stride, hn += kGroupSize, ids += kGroupSize) {
    __m256 acc[kGroupSize];
    const __m256 tmax = score_group<kDim>(cg, hn, c.dim, tile, acc);
    __m256i group_id = none;
#pragma GCC unroll 8
    for (int j = 0; j < kGroupSize; ++j) {
      const __m256i at_max = _mm256_castps_si256(_mm256_cmp_ps(acc[j], tmax, _CMP_EQ_OQ));
      const __m256i lower =
          _mm256_min_epu32(group_id, _mm256_set1_epi32(static_cast<int32_t>(ids[j])));
      group_id = _mm256_blendv_epi8(group_id, lower, at_max);
    }
    const __m256i improved = _mm256_castps_si256(_mm256_cmp_ps(tmax, best, _CMP_GT_OQ));
    const __m256i equal = _mm256_castps_si256(_mm256_cmp_ps(tmax, best, _CMP_EQ_OQ));
    best_id = _mm256_blendv_epi8(best_id, group_id, improved);
    best_id = _mm256_blendv_epi8(best_id, _mm256_min_epu32(best_id, group_id), equal);
    best = _mm256_max_ps(tmax, best);
  }
  _mm256_storeu_ps(dist, chosen_distances<kDim>(c.rows, c.dim, tile, best_id));
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(codes), best_id);
}

}  // namespace

void assign_tiles_avx2(const CentroidSet& centroids, const TileRange& range) {
  switch (centroids.dim) {
    case 4:
      return assign_range<4>(centroids, range);
    case 8:
      return assign_range<8>(centroids, range);
    case 16:
      return assign_range<16>(centroids, range);
    default:
      return assign_range<0>(centroids, range);
  }
}

void score_candidates_avx2(const CandidateBlock& block, int64_t groups, const float* tile,
                           uint32_t* codes, float* dist) {
  switch (block.dim) {
    case 4:
      return score_tile<4>(block, groups, tile, codes, dist);
    case 8:
      return score_tile<8>(block, groups, tile, codes, dist);
    case 16:
      return score_tile<16>(block, groups, tile, codes, dist);
    default:
      return score_tile<0>(block, groups, tile, codes, dist);
  }
}

}  // namespace pgkm::cpu
