// Internal to the CPU backend: resident points, prepared centroids and the kernel set
// chosen at run time, shared by cpu_backend.cpp (brute force, accumulation) and
// pruned_assign.cpp (exact candidate search). Never included by the SIMD translation
// units (their inline copies must not be the ones the linker keeps).
#pragma once

#include <cstdint>
#include <memory>
#include <new>
#include <span>
#include <vector>

#include "kernels/backend.h"
#include "kernels/cpu/assign_kernels.h"

namespace pgkm::cpu {

// Cache-line alignment, so every 32- or 64-byte row load is aligned.
inline constexpr std::align_val_t kAlignment{64};

struct AlignedDelete {
  void operator()(float* p) const { ::operator delete[](p, kAlignment); }
};
using AlignedFloats = std::unique_ptr<float[], AlignedDelete>;

// `count` zeroed floats (at least one), 64-byte aligned.
AlignedFloats make_aligned_floats(size_t count);

// What the pruned search keeps between passes (pruned_assign.cpp).
struct PrunedCache;

// Points as [tiles][dim][kTileWidth] floats (padding lanes zero) plus their weights.
class CpuResidentPoints final : public ResidentPoints {
 public:
  CpuResidentPoints(std::span<const float> points, std::span<const uint32_t> weights, int dim);

  int64_t size() const override { return n_; }
  int dim() const override { return dim_; }
  int64_t tiles() const { return tiles_; }
  const float* data() const { return data_.get(); }
  // Coordinate d of point p is point(p)[d * kTileWidth].
  const float* point(int64_t p) const {
    return data_.get() + (p / kTileWidth) * dim_ * kTileWidth + p % kTileWidth;
  }
  const uint32_t* weights() const { return weights_.data(); }
  // An upper bound of max_p |x_p| (exact Euclidean norm), for the pruning margin.
  double max_norm() const { return max_norm_; }
  // The pruned search's state between passes: the points sorted by their last codes
  // (and, for the fused pass, the sums of those codes). Rebuilt whenever the previous
  // codes a pass is given are not the ones it holds, so it is a cache: it never
  // changes a result. One k-means at a time uses a layer's points, so it needs no lock.
  std::shared_ptr<PrunedCache>& pruned_cache() const { return pruned_cache_; }

 private:
  int64_t n_;
  int dim_;
  int64_t tiles_;
  AlignedFloats data_;
  std::vector<uint32_t> weights_;
  double max_norm_;
  mutable std::shared_ptr<PrunedCache> pruned_cache_;
};

// Centroids in the kernels' layout; owns the buffers a CentroidSet points into.
struct PreparedCentroids {
  AlignedFloats grouped;
  AlignedFloats half_norms;
  AlignedFloats block_columns;
  std::vector<uint32_t> block_ids;
  AlignedFloats box_lo;
  AlignedFloats box_hi;
  std::vector<uint32_t> order;  // [k] the block order (empty without blocks)
  CentroidSet view;
};

// Whether prepare_centroids lays out the search blocks (CentroidSet::block_columns and
// boxes: the pruned search needs them, brute force does not), in a given order (a
// previous pass's: [k]) or, when order is null, a fresh k-d order.
struct BlockLayout {
  bool blocks = false;
  const std::vector<uint32_t>* order = nullptr;
};

// rows: [k, dim] row-major; the view keeps pointing into rows.
PreparedCentroids prepare_centroids(std::span<const float> rows, int dim, BlockLayout layout = {});

// The kernels of one instruction set (assign_kernels.h).
struct KernelSet {
  const char* name;  // backend name: "cpu-scalar", "cpu-avx2", "cpu-avx512"
  void (*assign_tiles)(const CentroidSet&, const TileRange&);
  // score_candidates for gathered tiles of `tile_width` points.
  void (*score_candidates)(const CandidateBlock&, int64_t groups, const float* tile,
                           uint32_t* codes, float* dist);
  int tile_width;
  void (*select_levels)(const CentroidSet&, int64_t a, float block_limit, const float* limits,
                        int levels, int64_t stride, uint32_t* out, int64_t* counts);
  void (*fill_block)(const CentroidSet&, const uint32_t* ids, int64_t count, int64_t groups,
                     float* grouped, float* half_norms, uint32_t* block_ids);
  float (*own_distances)(const float* xs, int64_t m, const float* ca, int dim, float* own);
  int64_t (*select_neighbors)(const CentroidSet&, int64_t a, float limit, float block_limit,
                              uint32_t* ids, float* keys);
};

// Brute force over every resident tile, OpenMP over chunks of tiles.
void assign_all(const KernelSet& kernels, int threads, const CpuResidentPoints& points,
                const CentroidSet& centroids, uint32_t* codes, float* dist);

// Per-centroid sums of the points by code, as Backend::accumulate defines them.
struct ClusterSums {
  std::span<int64_t> sums;     // [k, dim]
  std::span<uint64_t> counts;  // [k]
};

// Backend::assign_pruned (sums empty) or assign_accumulate_pruned after the arguments
// were checked: exact candidate search with brute force where pruning cannot pay
// (pruned_assign.cpp).
void assign_pruned(const KernelSet& kernels, int threads, const CpuResidentPoints& points,
                   std::span<const float> centroids, std::span<const uint32_t> previous,
                   std::span<uint32_t> codes, std::span<float> dist, SearchStats& stats,
                   const FixedPoint* fp = nullptr, ClusterSums sums = {});

// Backend::accumulate after the arguments were checked.
void accumulate_all(int threads, const CpuResidentPoints& points, const uint32_t* codes,
                    const FixedPoint& fp, std::span<int64_t> sums, std::span<uint64_t> counts);

}  // namespace pgkm::cpu
