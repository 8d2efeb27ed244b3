// AVX2+FMA kernels of the candidate search besides the scoring (assign_avx2.cpp): the
// neighbour selection, the block's gather, and the rows' distances to their own centroid.
// Built with -mavx2 -mfma and run only after cpu_has_avx2_fma(); intrinsics and
// internal functions only (see assign_avx2.cpp for why).
#include <immintrin.h>

#include <cstdint>

#include "kernels/cpu/assign_kernels.h"

namespace pgkm::cpu {
namespace {

// Box keys of c_a with 8 blocks: bit i set when block first_block + i may hold a
// candidate.
template <int kDim>
unsigned boxes_within(const CentroidSet& c, const float* ca, int64_t first_block, int64_t blocks,
                      __m256 block_limit) {
  const int dim = kDim > 0 ? kDim : c.dim;
  __m256 acc = _mm256_setzero_ps();
#pragma GCC unroll 32
  for (int d = 0; d < dim; ++d) {
    const __m256 a = _mm256_broadcast_ss(ca + d);
    const __m256 below = _mm256_sub_ps(_mm256_loadu_ps(c.box_lo + d * blocks + first_block), a);
    const __m256 above = _mm256_sub_ps(a, _mm256_loadu_ps(c.box_hi + d * blocks + first_block));
    const __m256 t = _mm256_max_ps(_mm256_max_ps(below, above), _mm256_setzero_ps());
    acc = _mm256_fmadd_ps(t, t, acc);
  }
  return static_cast<unsigned>(_mm256_movemask_ps(_mm256_cmp_ps(acc, block_limit, _CMP_LE_OQ)));
}

// The pair keys of c_a with the centroids of every block whose box may be within
// `limit` (boxes_within at block_limit), 8 at a time: hit(in, keys, first) for the 8
// block slots from `first`, in: the lanes whose key is <= limit (never 0).
template <int kDim, typename Hit>
void scan_near_blocks(const CentroidSet& c, int64_t a, float block_limit, float limit,
                      const Hit& hit) {
  const int dim = kDim > 0 ? kDim : c.dim;
  const float* ca = c.rows + a * dim;
  const int64_t col = c.column_stride;
  const int64_t blocks = col / 16;
  const __m256 box_limit = _mm256_set1_ps(block_limit);
  const __m256 lim = _mm256_set1_ps(limit);
  for (int64_t first_block = 0; first_block < blocks; first_block += 8) {
    unsigned near = boxes_within<kDim>(c, ca, first_block, blocks, box_limit);
    if (blocks - first_block < 8) near &= (1u << (blocks - first_block)) - 1u;
    for (; near != 0; near &= near - 1) {
      const int64_t block = first_block + __builtin_ctz(near);
      for (int64_t first = block * 16; first < block * 16 + 16; first += 8) {
        __m256 acc = _mm256_setzero_ps();
#pragma GCC unroll 32
        for (int d = 0; d < dim; ++d) {
          const __m256 t = _mm256_sub_ps(_mm256_load_ps(c.block_columns + d * col + first),
                                         _mm256_broadcast_ss(ca + d));
          acc = _mm256_fmadd_ps(t, t, acc);
        }
        unsigned in =
            static_cast<unsigned>(_mm256_movemask_ps(_mm256_cmp_ps(acc, lim, _CMP_LE_OQ)));
        if (c.k - first < kGroupSize) in &= c.k > first ? (1u << (c.k - first)) - 1u : 0u;
        if (in != 0) hit(in, acc, first);
      }
    }
  }
}

// kPack[mask]: the lanes set in an 8-bit mask, in ascending order, then zeros: the
// permutation that packs those lanes to the front (AVX2 has no compress).
struct PackTable {
  alignas(32) uint32_t lanes[256][8];
  constexpr PackTable() : lanes{} {
    for (unsigned mask = 0; mask < 256; ++mask) {
      int n = 0;
      for (unsigned lane = 0; lane < 8; ++lane) {
        if ((mask >> lane) & 1u) lanes[mask][n++] = lane;
      }
    }
  }
};
constexpr PackTable kPack;

template <int kDim>
void select_levels(const CentroidSet& c, int64_t a, float block_limit, const float* limits,
                   int levels, int64_t stride, uint32_t* out, int64_t* counts) {
  __m256 lim[kMaxLevels];
  for (int l = 0; l < levels; ++l) {
    lim[l] = _mm256_set1_ps(limits[l]);
    counts[l] = 0;
  }
  // Each level's hits of a group are packed and stored at once (8 slots; the lists
  // have 16 slots of slack), in lane order, as one at a time would.
  scan_near_blocks<kDim>(
      c, a, block_limit, limits[levels - 1], [&](unsigned left, __m256 acc, int64_t first) {
        const __m256i ids =
            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(c.block_ids + first));
        for (int l = 0; l < levels && left != 0; ++l) {
          const unsigned level =
              left &
              static_cast<unsigned>(_mm256_movemask_ps(_mm256_cmp_ps(acc, lim[l], _CMP_LE_OQ)));
          if (level == 0) continue;
          left &= ~level;
          const __m256i pack =
              _mm256_load_si256(reinterpret_cast<const __m256i*>(kPack.lanes[level]));
          _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + l * stride + counts[l]),
                              _mm256_permutevar8x32_epi32(ids, pack));
          counts[l] += __builtin_popcount(level);
        }
      });
}

template <int kDim>
int64_t select_neighbors(const CentroidSet& c, int64_t a, float limit, float block_limit,
                         uint32_t* ids, float* keys) {
  int64_t count = 0;
  scan_near_blocks<kDim>(c, a, block_limit, limit, [&](unsigned in, __m256 acc, int64_t first) {
    alignas(32) float key[kGroupSize];
    _mm256_store_ps(key, acc);
    for (; in != 0; in &= in - 1) {
      const int lane = __builtin_ctz(in);
      ids[count] = c.block_ids[first + lane];
      keys[count++] = key[lane];
    }
  });
  return count;
}

// r[j] = row j of an 8x8 block becomes column j: r[d][j] = old r[j][d].
void transpose8(__m256* r) {
  const __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]);
  const __m256 t1 = _mm256_unpackhi_ps(r[0], r[1]);
  const __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]);
  const __m256 t3 = _mm256_unpackhi_ps(r[2], r[3]);
  const __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]);
  const __m256 t5 = _mm256_unpackhi_ps(r[4], r[5]);
  const __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]);
  const __m256 t7 = _mm256_unpackhi_ps(r[6], r[7]);
  const __m256 s0 = _mm256_shuffle_ps(t0, t2, 0x44);
  const __m256 s1 = _mm256_shuffle_ps(t0, t2, 0xEE);
  const __m256 s2 = _mm256_shuffle_ps(t1, t3, 0x44);
  const __m256 s3 = _mm256_shuffle_ps(t1, t3, 0xEE);
  const __m256 s4 = _mm256_shuffle_ps(t4, t6, 0x44);
  const __m256 s5 = _mm256_shuffle_ps(t4, t6, 0xEE);
  const __m256 s6 = _mm256_shuffle_ps(t5, t7, 0x44);
  const __m256 s7 = _mm256_shuffle_ps(t5, t7, 0xEE);
  r[0] = _mm256_permute2f128_ps(s0, s4, 0x20);
  r[1] = _mm256_permute2f128_ps(s1, s5, 0x20);
  r[2] = _mm256_permute2f128_ps(s2, s6, 0x20);
  r[3] = _mm256_permute2f128_ps(s3, s7, 0x20);
  r[4] = _mm256_permute2f128_ps(s0, s4, 0x31);
  r[5] = _mm256_permute2f128_ps(s1, s5, 0x31);
  r[6] = _mm256_permute2f128_ps(s2, s6, 0x31);
  r[7] = _mm256_permute2f128_ps(s3, s7, 0x31);
}

// r[j] holds rows j (low half) and j + 4 (high half) of 4 values; afterwards r[d] holds
// value d of rows 0..3 (low half) and 4..7 (high half).
void transpose4_lanes(__m256* r) {
  const __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]);
  const __m256 t1 = _mm256_unpackhi_ps(r[0], r[1]);
  const __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]);
  const __m256 t3 = _mm256_unpackhi_ps(r[2], r[3]);
  r[0] = _mm256_shuffle_ps(t0, t2, 0x44);
  r[1] = _mm256_shuffle_ps(t0, t2, 0xEE);
  r[2] = _mm256_shuffle_ps(t1, t3, 0x44);
  r[3] = _mm256_shuffle_ps(t1, t3, 0xEE);
}

}  // namespace

void select_levels_avx2(const CentroidSet& centroids, int64_t a, float block_limit,
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

float own_distances_avx2(const float* xs, int64_t m, const float* ca, int dim, float* own) {
  float farthest = -1.f;
  for (int64_t i = 0; i < m; ++i) {
    const float* x = xs + i * dim;
    float acc = 0.f;
    for (int d = 0; d < dim; ++d) {
      const float t = x[d] - ca[d];
      acc = __builtin_fmaf(t, t, acc);
    }
    own[i] = acc;
    farthest = acc > farthest ? acc : farthest;
  }
  return farthest;
}

int64_t select_neighbors_avx2(const CentroidSet& centroids, int64_t a, float limit,
                              float block_limit, uint32_t* ids, float* keys) {
  switch (centroids.dim) {
    case 4:
      return select_neighbors<4>(centroids, a, limit, block_limit, ids, keys);
    case 8:
      return select_neighbors<8>(centroids, a, limit, block_limit, ids, keys);
    case 16:
      return select_neighbors<16>(centroids, a, limit, block_limit, ids, keys);
    default:
      return select_neighbors<0>(centroids, a, limit, block_limit, ids, keys);
  }
}

void fill_block_avx2(const CentroidSet& centroids, const uint32_t* ids, int64_t count,
                     int64_t groups, float* grouped, float* half_norms, uint32_t* block_ids) {
  const int dim = centroids.dim;
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  for (int64_t g = 0; g < groups; ++g) {
    const int64_t first = g * kGroupSize;
    const int real = static_cast<int>(count - first < 0 ? 0 : count - first);
    const __m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(real), lane);
    const __m256i idx =
        _mm256_and_si256(mask, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ids + first)));
    // Each candidate's row is one or two cache lines; transposing rows touches far fewer
    // lines than gathering every coordinate column.
    const float* row[kGroupSize];
    for (int j = 0; j < kGroupSize; ++j)
      row[j] = j < real ? centroids.rows + int64_t{ids[first + j]} * dim : nullptr;
    float* dst = grouped + g * dim * kGroupSize;
    if (dim % 8 == 0) {
      for (int d = 0; d < dim; d += 8) {
        __m256 r[kGroupSize];
        for (int j = 0; j < kGroupSize; ++j)
          r[j] = row[j] != nullptr ? _mm256_loadu_ps(row[j] + d) : _mm256_setzero_ps();
        transpose8(r);
        for (int j = 0; j < kGroupSize; ++j)
          _mm256_store_ps(dst + (d + j) * kGroupSize, r[j]);
      }
    } else if (dim % 4 == 0) {
      for (int d = 0; d < dim; d += 4) {
        __m256 r[4];
        for (int j = 0; j < 4; ++j) {
          const __m128 lo = row[j] != nullptr ? _mm_loadu_ps(row[j] + d) : _mm_setzero_ps();
          const __m128 hi = row[j + 4] != nullptr ? _mm_loadu_ps(row[j + 4] + d) : _mm_setzero_ps();
          r[j] = _mm256_insertf128_ps(_mm256_castps128_ps256(lo), hi, 1);
        }
        transpose4_lanes(r);
        for (int j = 0; j < 4; ++j)
          _mm256_store_ps(dst + (d + j) * kGroupSize, r[j]);
      }
    } else {
      for (int j = 0; j < kGroupSize; ++j) {
        for (int d = 0; d < dim; ++d)
          dst[d * kGroupSize + j] = row[j] != nullptr ? row[j][d] : 0.f;
      }
    }
    const __m256 hn = _mm256_mask_i32gather_ps(
        _mm256_set1_ps(-__builtin_inff()), centroids.half_norms, idx, _mm256_castsi256_ps(mask), 4);
    _mm256_storeu_ps(half_norms + first, hn);
    const __m256i out = _mm256_blendv_epi8(_mm256_set1_epi32(-1), idx, mask);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(block_ids + first), out);
  }
}

}  // namespace pgkm::cpu
