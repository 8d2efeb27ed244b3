// Internal to the CPU backend: the data layouts shared by cpu_backend.cpp and the
// assignment kernels, and the kernel entry points.
//
// Points are stored as SoA tiles of kTileWidth points, [tiles][dim][kTileWidth], so
// one AVX2 register holds one coordinate of 8 points. Centroids are regrouped per
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

// Portable kernel: std::fma in the contract's order, one point at a time.
void assign_tiles_scalar(const CentroidSet& centroids, const TileRange& range);

// AVX2+FMA kernel; call only when cpu_has_avx2_fma(). Bit-identical to the scalar one.
void assign_tiles_avx2(const CentroidSet& centroids, const TileRange& range);

}  // namespace pgkm::cpu
