// Internal to the CPU backend: the data layouts shared by cpu_backend.cpp and the
// assignment kernels, and the kernel entry points.
//
// Points are stored as SoA tiles of kTileWidth points, [tiles][dim][kTileWidth], so
// one AVX2 register holds one coordinate of 8 points (the AVX-512 kernels take two
// tiles, or a gathered tile of 16). Centroids are regrouped per
// assign() call into groups of kGroupSize, [groups][dim][kGroupSize], padded with
// centroids whose half norm is -infinity so that they never win.
//
// This header declares only plain structs and non-inline functions on purpose: an
// inline function defined here and compiled into assign_avx2.cpp (built with -mavx2)
// could be the copy the linker keeps for every translation unit.
#pragma once

#include <cstdint>

namespace pgkm::cpu {

// Points per SoA tile: the lane count of an AVX2 float register.
inline constexpr int kTileWidth = 8;
// Centroids scored together per tile: enough independent FMA chains to hide latency.
inline constexpr int kGroupSize = 8;

// Centroids laid out for the kernels by prepare_centroids() in cpu_backend.cpp.
struct CentroidSet {
  const float* rows = nullptr;        // [k][dim], as given; used for the distances
  const float* grouped = nullptr;     // [groups][dim][kGroupSize], padding coordinates 0
  const float* half_norms = nullptr;  // [groups * kGroupSize], -0.5 |c|^2, padding -inf
  int64_t column_stride = 0;          // k rounded up to a multiple of 16
  // The search order: centroids in blocks of 16 that are compact in space (a k-d tree's
  // leaves). block_columns: [dim][column_stride] coordinates in that order, padding 0;
  // block_ids: [column_stride] the index at each position, kNoCandidate for padding;
  // box_lo, box_hi: [dim][column_stride / 16] each block's bounding box (readable 16
  // floats past the end).
  const float* block_columns = nullptr;
  const uint32_t* block_ids = nullptr;
  const float* box_lo = nullptr;
  const float* box_hi = nullptr;
  int64_t k = 0;
  int64_t groups = 0;
  int dim = 0;
};

// A contiguous range of point tiles and where their results go.
struct TileRange {
  const float* tiles = nullptr;  // all tiles of the layer, [tiles][dim][kTileWidth]
  int64_t n = 0;                 // points in the layer; lanes at or past n are padding
  int64_t first = 0;             // first tile to process
  int64_t last = 0;              // one past the last tile
  uint32_t* codes = nullptr;     // [n], indexed by point
  float* dist = nullptr;         // [n]
};

// Index of a padding slot in a CandidateBlock.
inline constexpr uint32_t kNoCandidate = 0xffffffffu;

// One cluster's candidate centroids in search order (ascending pair key, so not in
// index order), in CentroidSet's grouped layout plus each slot's original index.
struct CandidateBlock {
  const float* rows = nullptr;        // [k][dim], all centroids by original index
  const float* grouped = nullptr;     // [groups][dim][kGroupSize], padding coordinates 0
  const float* half_norms = nullptr;  // [groups * kGroupSize], -0.5 |c|^2, padding -inf
  const uint32_t* ids = nullptr;      // [groups * kGroupSize] original index, kNoCandidate
  int64_t groups = 0;
  int dim = 0;
};

// Brute-force kernels: every point of the range against every centroid.
// Portable kernel: std::fma in the contract's order, one point at a time.
void assign_tiles_scalar(const CentroidSet& centroids, const TileRange& range);
// AVX2+FMA kernel; call only when cpu_has_avx2_fma(). Bit-identical to the scalar one.
void assign_tiles_avx2(const CentroidSet& centroids, const TileRange& range);
// AVX-512 kernel, two tiles at a time; call only when cpu_has_avx512(). Same bits.
void assign_tiles_avx512(const CentroidSet& centroids, const TileRange& range);

// Candidate kernels: the points of one gathered tile, [dim][width] (width = the
// kernel's tile width: any for scalar, 8 for AVX2, 16 for AVX-512), against the first
// `groups` groups of a block. codes, dist: [width] out, for every lane (padding lanes
// included): the lowest original index among the best scores, as the brute-force
// kernels would find if the winner is among those groups, and its distance.
void score_candidates_scalar(const CandidateBlock& block, int64_t groups, const float* tile,
                             int width, uint32_t* codes, float* dist);
void score_candidates_avx2(const CandidateBlock& block, int64_t groups, const float* tile,
                           uint32_t* codes, float* dist);
void score_candidates_avx512(const CandidateBlock& block, int64_t groups, const float* tile,
                             uint32_t* codes, float* dist);

// Levels of key limits that a cluster's tiles fall into (select_levels).
inline constexpr int kMaxLevels = 8;

// The neighbours of centroid a, by level: centroid j with pair key A_j
// (candidates::pair_key, the contract's dist chain between c_a and c_j) goes to the
// first level l with A_j <= limits[l]; limits: [levels] ascending, levels in
// 1..kMaxLevels; centroids above limits[levels - 1] are left out, and so are whole
// blocks whose box key exceeds block_limit (candidates::block_limit of the top limit).
// out: [levels][stride], stride >= centroids.k + 16, level l's indices (in block order)
// from out + l * stride (the SIMD kernels may write up to 16 values past the last).
// counts: [levels] out.
void select_levels_scalar(const CentroidSet& centroids, int64_t a, float block_limit,
                          const float* limits, int levels, int64_t stride, uint32_t* out,
                          int64_t* counts);
void select_levels_avx2(const CentroidSet& centroids, int64_t a, float block_limit,
                        const float* limits, int levels, int64_t stride, uint32_t* out,
                        int64_t* counts);
void select_levels_avx512(const CentroidSet& centroids, int64_t a, float block_limit,
                          const float* limits, int levels, int64_t stride, uint32_t* out,
                          int64_t* counts);

// Centroids ids[0, count) in the kernels' grouped layout, padded to `groups` groups
// (>= count / kGroupSize): grouped [groups][dim][kGroupSize], half_norms and block_ids
// [groups * kGroupSize] (padding: coordinates 0, half norm -inf, kNoCandidate). ids
// must be readable up to groups * kGroupSize; the values past count are ignored.
void fill_block_scalar(const CentroidSet& centroids, const uint32_t* ids, int64_t count,
                       int64_t groups, float* grouped, float* half_norms, uint32_t* block_ids);
void fill_block_avx2(const CentroidSet& centroids, const uint32_t* ids, int64_t count,
                     int64_t groups, float* grouped, float* half_norms, uint32_t* block_ids);

// Helpers of the pruned search (pruned_assign.cpp).

// own[i] = the contract's dist chain from row i of xs ([m][dim] row-major) to ca;
// returns the largest (-1 when m = 0).
float own_distances_scalar(const float* xs, int64_t m, const float* ca, int dim, float* own);
float own_distances_avx2(const float* xs, int64_t m, const float* ca, int dim, float* own);

// The centroids j whose pair key with c_a is <= limit (candidates::pair_key's chain),
// skipping the blocks whose box key exceeds block_limit: ids and keys, each writable up
// to centroids.k + 16 values, in block order. Returns their number.
int64_t select_neighbors_scalar(const CentroidSet& centroids, int64_t a, float limit,
                                float block_limit, uint32_t* ids, float* keys);
int64_t select_neighbors_avx2(const CentroidSet& centroids, int64_t a, float limit,
                              float block_limit, uint32_t* ids, float* keys);

}  // namespace pgkm::cpu
