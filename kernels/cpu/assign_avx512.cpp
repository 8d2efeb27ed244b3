// AVX-512 assignment kernels: brute force (two resident tiles of 8 points side by side
// in one register), candidate scoring (a gathered tile of 16 points) and neighbour
// selection (boxes of 16 blocks, then the 16 centroids of each block that may count). Built with
// -mavx512f -mavx512vl -mavx512dq -mavx512bw -mavx2 -mfma and run only after
// cpu_has_avx512(); intrinsics and internal functions only (see assign_avx2.cpp).
//
// Same arithmetic as the AVX2 kernels, lane for lane: each lane runs the contract's
// FMA chain for one point and one centroid, so the bits are those of the scalar
// kernel. Twice the points per instruction; the per-group argmax bookkeeping is the
// same count of instructions, now for 16 points.
#include <immintrin.h>

// GCC 12's AVX-512 headers start masked intrinsics from _mm512_undefined_ps(), which
// it then reports as uninitialized (GCC bug 105593, fixed in GCC 13).
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ < 13
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif

#include <cstdint>

#include "core/limits.h"
#include "kernels/cpu/assign_kernels.h"

namespace pgkm::cpu {
namespace {

constexpr int kWide = 16;  // points per 512-bit register

struct WideBest {
  __m512 score;
  __m512i group;
};

// The scores of one group of 8 centroids (cg: [dim][8], hn: their half norms) for the
// 16 points of a [dim][16] tile, into acc; returns each point's maximum over the group.
template <int kDim>
[[gnu::always_inline]] inline __m512 score_group(const float* cg, const float* hn, int dim_,
                                                 const float* tile, __m512* acc) {
  const int dim = kDim > 0 ? kDim : dim_;
  // 32 registers hold up to 16 point rows besides the 8 accumulators.
  const float* x_rows = tile;
  if constexpr (kDim == 0 || kDim > 16) asm("" : "+r"(x_rows));
#pragma GCC unroll 8
  for (int j = 0; j < kGroupSize; ++j)
    acc[j] = _mm512_set1_ps(hn[j]);
#pragma GCC unroll 32
  for (int d = 0; d < dim; ++d) {
    const __m512 x = _mm512_load_ps(x_rows + d * kWide);
#pragma GCC unroll 8
    for (int j = 0; j < kGroupSize; ++j) {
      acc[j] = _mm512_fmadd_ps(x, _mm512_set1_ps(cg[d * kGroupSize + j]), acc[j]);
    }
  }
  const __m512 m01 = _mm512_max_ps(acc[0], acc[1]);
  const __m512 m23 = _mm512_max_ps(acc[2], acc[3]);
  const __m512 m45 = _mm512_max_ps(acc[4], acc[5]);
  const __m512 m67 = _mm512_max_ps(acc[6], acc[7]);
  return _mm512_max_ps(_mm512_max_ps(m01, m23), _mm512_max_ps(m45, m67));
}

// The running best of 16 points over `groups` centroid groups: the first group with a
// strictly greater maximum, as in assign_avx2.cpp. tile: [dim][16].
template <int kDim>
WideBest scan_wide(const float* grouped, const float* half_norms, int64_t groups, int dim,
                   const float* tile) {
  const int64_t group_stride = int64_t{dim} * kGroupSize;
  __m512 best = _mm512_set1_ps(-__builtin_inff());
  __m512i best_group = _mm512_setzero_si512();
  __m512i group = _mm512_setzero_si512();
  const __m512i one = _mm512_set1_epi32(1);
  const float* cg = grouped;
  const float* hn = half_norms;
  for (int64_t g = 0; g < groups; ++g, cg += group_stride, hn += kGroupSize) {
    __m512 acc[kGroupSize];
    const __m512 tmax = score_group<kDim>(cg, hn, dim, tile, acc);
    const __mmask16 improved = _mm512_cmp_ps_mask(tmax, best, _CMP_GT_OQ);
    best = _mm512_max_ps(tmax, best);
    best_group = _mm512_mask_mov_epi32(best_group, improved, group);
    group = _mm512_add_epi32(group, one);
  }
  return {best, best_group};
}

// Bit j set: slot j of `group` scores exactly `best` for point `lane` of a [dim][16] tile.
template <int kDim>
unsigned equal_slots(const float* grouped, const float* half_norms, int dim_, const float* tile,
                     int lane, int64_t group, float best) {
  const int dim = kDim > 0 ? kDim : dim_;
  const float* cg = grouped + group * dim * kGroupSize;
  __m256 acc = _mm256_loadu_ps(half_norms + group * kGroupSize);
#pragma GCC unroll 32
  for (int d = 0; d < dim; ++d) {
    const __m256 x = _mm256_broadcast_ss(tile + d * kWide + lane);
    acc = _mm256_fmadd_ps(x, _mm256_load_ps(cg + d * kGroupSize), acc);
  }
  return static_cast<unsigned>(
      _mm256_movemask_ps(_mm256_cmp_ps(acc, _mm256_set1_ps(best), _CMP_EQ_OQ)));
}

// dist of each lane of a [dim][16] tile to its chosen centroid, rows [k][dim].
template <int kDim>
__m512 chosen_distances(const float* rows, int dim_, const float* tile, __m512i codes) {
  const int dim = kDim > 0 ? kDim : dim_;
  const __m512i offsets = _mm512_mullo_epi32(codes, _mm512_set1_epi32(dim));
  __m512 acc = _mm512_setzero_ps();
#pragma GCC unroll 32
  for (int d = 0; d < dim; ++d) {
    const __m512 cd = _mm512_i32gather_ps(offsets, rows + d, 4);
    const __m512 t = _mm512_sub_ps(_mm512_load_ps(tile + d * kWide), cd);
    acc = _mm512_fmadd_ps(t, t, acc);
  }
  return acc;
}

template <int kDim>
void assign_range(const CentroidSet& c, const TileRange& range) {
  const int dim = kDim > 0 ? kDim : c.dim;
  alignas(64) float tile[kMaxBlockSize * kWide];
  alignas(64) float best[kWide];
  alignas(64) int32_t group[kWide];
  alignas(64) uint32_t codes[kWide];
  alignas(64) float dist[kWide];
  for (int64_t t = range.first; t < range.last; t += 2) {
    // Tiles t and t + 1 side by side; a lone last tile leaves the upper lanes zero.
    const float* low = range.tiles + t * dim * kTileWidth;
    const bool pair = t + 1 < range.last;
    for (int d = 0; d < dim; ++d) {
      const __m256 lo = _mm256_load_ps(low + d * kTileWidth);
      const __m256 hi = pair ? _mm256_load_ps(low + (dim + d) * kTileWidth) : _mm256_setzero_ps();
      _mm512_store_ps(tile + d * kWide, _mm512_insertf32x8(_mm512_castps256_ps512(lo), hi, 1));
    }
    const WideBest wb = scan_wide<kDim>(c.grouped, c.half_norms, c.groups, dim, tile);
    _mm512_store_ps(best, wb.score);
    _mm512_store_si512(group, wb.group);
    for (int lane = 0; lane < kWide; ++lane) {
      // Groups are in index order: the lowest equal lane of the first best group.
      const unsigned equal =
          equal_slots<kDim>(c.grouped, c.half_norms, dim, tile, lane, group[lane], best[lane]);
      codes[lane] =
          static_cast<uint32_t>(group[lane] * kGroupSize + (equal != 0 ? __builtin_ctz(equal) : 0));
    }
    _mm512_store_ps(dist, chosen_distances<kDim>(c.rows, dim, tile, _mm512_load_si512(codes)));
    const int64_t base = t * kTileWidth;
    int64_t lanes = pair ? kWide : kTileWidth;
    if (range.n - base < lanes) lanes = range.n - base;
    for (int64_t lane = 0; lane < lanes; ++lane) {
      range.codes[base + lane] = codes[lane];
      range.dist[base + lane] = dist[lane];
    }
  }
}

// Candidates: slots are in key order, not index order, and a block is short (a few
// groups), so rather than re-scoring each lane's best group at the end (as assign_range
// does over all k), every group keeps, per lane, the lowest original index among its
// slots that reach the group's maximum; a strictly greater maximum replaces the lane's
// best, an equal one keeps the lower index. Exactly the contract's choice, ties included.
template <int kDim>
void score_tile(const CandidateBlock& c, int64_t groups, const float* tile, uint32_t* codes,
                float* dist) {
  const int dim = kDim > 0 ? kDim : c.dim;
  const int64_t group_stride = int64_t{dim} * kGroupSize;
  const __m512i none = _mm512_set1_epi32(static_cast<int32_t>(kNoCandidate));
  __m512 best = _mm512_set1_ps(-__builtin_inff());
  __m512i best_id = none;
  const float* cg = c.grouped;
  const float* hn = c.half_norms;
  const uint32_t* ids = c.ids;
  for (int64_t g = 0; g < groups; ++g, cg += group_stride, hn += kGroupSize, ids += kGroupSize) {
    __m512 acc[kGroupSize];
    const __m512 tmax = score_group<kDim>(cg, hn, dim, tile, acc);
    __m512i group_id = none;
#pragma GCC unroll 8
    for (int j = 0; j < kGroupSize; ++j) {
      const __mmask16 at_max = _mm512_cmp_ps_mask(acc[j], tmax, _CMP_EQ_OQ);
      group_id = _mm512_mask_min_epu32(group_id, at_max, group_id,
                                       _mm512_set1_epi32(static_cast<int32_t>(ids[j])));
    }
    const __mmask16 improved = _mm512_cmp_ps_mask(tmax, best, _CMP_GT_OQ);
    const __mmask16 equal = _mm512_cmp_ps_mask(tmax, best, _CMP_EQ_OQ);
    best_id = _mm512_mask_mov_epi32(best_id, improved, group_id);
    best_id = _mm512_mask_min_epu32(best_id, equal, best_id, group_id);
    best = _mm512_max_ps(tmax, best);
  }
  _mm512_storeu_ps(dist, chosen_distances<kDim>(c.rows, dim, tile, best_id));
  _mm512_storeu_si512(codes, best_id);
}

// Box keys of c_a with 16 blocks at a time, then the pair keys of each block that may
// hold a candidate (16 centroids); each level's survivors are compressed into its list.
template <int kDim>
void select_levels(const CentroidSet& c, int64_t a, float block_limit, const float* limits,
                   int levels, int64_t stride, uint32_t* out, int64_t* counts) {
  const int dim = kDim > 0 ? kDim : c.dim;
  const float* ca = c.rows + a * dim;
  __m512 lim[kMaxLevels];
  for (int l = 0; l < levels; ++l) {
    lim[l] = _mm512_set1_ps(limits[l]);
    counts[l] = 0;
  }
  const int64_t col = c.column_stride;
  const int64_t blocks = col / kWide;
  const __m512 box_limit = _mm512_set1_ps(block_limit);
  for (int64_t first_block = 0; first_block < blocks; first_block += kWide) {
    const __mmask16 real = blocks - first_block < kWide
                               ? static_cast<__mmask16>((1u << (blocks - first_block)) - 1u)
                               : static_cast<__mmask16>(0xffff);
    __m512 box = _mm512_setzero_ps();
#pragma GCC unroll 32
    for (int d = 0; d < dim; ++d) {
      const __m512 ad = _mm512_set1_ps(ca[d]);
      const __m512 below =
          _mm512_sub_ps(_mm512_maskz_loadu_ps(real, c.box_lo + d * blocks + first_block), ad);
      const __m512 above =
          _mm512_sub_ps(ad, _mm512_maskz_loadu_ps(real, c.box_hi + d * blocks + first_block));
      const __m512 t = _mm512_max_ps(_mm512_max_ps(below, above), _mm512_setzero_ps());
      box = _mm512_fmadd_ps(t, t, box);
    }
    unsigned near = _mm512_mask_cmp_ps_mask(real, box, box_limit, _CMP_LE_OQ);
    for (; near != 0; near &= near - 1) {
      const int64_t first = (first_block + __builtin_ctz(near)) * kWide;
      __m512 acc = _mm512_setzero_ps();
#pragma GCC unroll 32
      for (int d = 0; d < dim; ++d) {
        const __m512 t =
            _mm512_sub_ps(_mm512_load_ps(c.block_columns + d * col + first), _mm512_set1_ps(ca[d]));
        acc = _mm512_fmadd_ps(t, t, acc);
      }
      __mmask16 left = _mm512_cmp_ps_mask(acc, lim[levels - 1], _CMP_LE_OQ);
      if (c.k - first < kWide) left &= static_cast<__mmask16>((1u << (c.k - first)) - 1u);
      const __m512i ids = _mm512_loadu_si512(c.block_ids + first);
      // Every level, without branches: which levels the survivors fall into does not
      // follow a pattern the branch predictor could learn.
      for (int l = 0; l < levels; ++l) {
        const __mmask16 level = left & _mm512_cmp_ps_mask(acc, lim[l], _CMP_LE_OQ);
        left = static_cast<__mmask16>(left & ~level);
        _mm512_storeu_si512(out + l * stride + counts[l], _mm512_maskz_compress_epi32(level, ids));
        counts[l] += __builtin_popcount(level);
      }
    }
  }
}

}  // namespace

void select_levels_avx512(const CentroidSet& centroids, int64_t a, float block_limit,
                          const float* limits, int levels, int64_t stride, uint32_t* out,
                          int64_t* counts) {
  switch (centroids.dim) {
    case 4:
      return select_levels<4>(centroids, a, block_limit, limits, levels, stride, out, counts);
    case 8:
      return select_levels<8>(centroids, a, block_limit, limits, levels, stride, out, counts);
    case 16:
      return select_levels<16>(centroids, a, block_limit, limits, levels, stride, out, counts);
    default:
      return select_levels<0>(centroids, a, block_limit, limits, levels, stride, out, counts);
  }
}

void assign_tiles_avx512(const CentroidSet& centroids, const TileRange& range) {
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

void score_candidates_avx512(const CandidateBlock& block, int64_t groups, const float* tile,
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
