// The CPU backend: resident SoA point tiles, run-time choice between the AVX-512, AVX2
// and scalar kernels, OpenMP over point tiles, exact fixed-point accumulation. The
// pruned search lives in pruned_assign.cpp.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <new>
#include <span>
#include <string>
#include <vector>

#include "core/errors.h"
#include "kernels/backend.h"
#include "kernels/cpu/assign_kernels.h"
#include "kernels/cpu/cpu_features.h"
#include "kernels/cpu/cpu_internal.h"

namespace pgkm {
namespace cpu {

AlignedFloats make_aligned_floats(size_t count) {
  return AlignedFloats(new (kAlignment) float[std::max<size_t>(count, 1)]());
}

CpuResidentPoints::CpuResidentPoints(std::span<const float> points,
                                     std::span<const uint32_t> weights, int dim)
    : n_(static_cast<int64_t>(weights.size())),
      dim_(dim),
      tiles_((n_ + kTileWidth - 1) / kTileWidth),
      data_(make_aligned_floats(static_cast<size_t>(tiles_ * dim * kTileWidth))),
      weights_(weights.begin(), weights.end()),
      max_norm_(0.0) {
  double max_sq = 0.0;
  for (int64_t p = 0; p < n_; ++p) {
    float* tile = data_.get() + (p / kTileWidth) * dim * kTileWidth;
    const int lane = static_cast<int>(p % kTileWidth);
    double sq = 0.0;
    for (int d = 0; d < dim; ++d) {
      const float x = points[p * dim + d];
      tile[d * kTileWidth + lane] = x;
      sq += double{x} * x;
    }
    max_sq = std::max(max_sq, sq);
  }
  // Doubles hold float squares exactly enough: 1 + 2^-40 covers dim + 1 roundings.
  max_norm_ = std::sqrt(max_sq * (1.0 + 0x1p-40)) * (1.0 + 0x1p-40);
}

namespace {

// Orders order[lo, hi) (lo a multiple of 16) like a k-d tree: halves, split at a
// multiple of 16, along the coordinate of widest extent, down to blocks of 16.
void kd_order(std::span<const float> rows, int dim, std::vector<uint32_t>& order, int64_t lo,
              int64_t hi) {
  if (hi - lo <= 16) return;
  int split = 0;
  float widest = -1.f;
  for (int d = 0; d < dim; ++d) {
    float low = std::numeric_limits<float>::infinity();
    float high = -low;
    for (int64_t i = lo; i < hi; ++i) {
      low = std::min(low, rows[int64_t{order[i]} * dim + d]);
      high = std::max(high, rows[int64_t{order[i]} * dim + d]);
    }
    if (high - low > widest) {
      widest = high - low;
      split = d;
    }
  }
  const int64_t mid = lo + (hi - lo + 31) / 32 * 16;
  std::nth_element(order.begin() + lo, order.begin() + mid, order.begin() + hi,
                   [&](uint32_t x, uint32_t y) {
                     const float vx = rows[int64_t{x} * dim + split];
                     const float vy = rows[int64_t{y} * dim + split];
                     return vx < vy || (vx == vy && x < y);
                   });
  kd_order(rows, dim, order, lo, mid);
  kd_order(rows, dim, order, mid, hi);
}

// The block order of the candidate search (CentroidSet::block_columns): `given`, or a
// fresh k-d order when it is null. Any order is valid (the boxes are always those of
// the current coordinates); a k-d one makes the boxes small.
void prepare_blocks(std::span<const float> rows, int dim, int64_t stride,
                    const std::vector<uint32_t>* given, PreparedCentroids& out) {
  const int64_t k = static_cast<int64_t>(rows.size()) / dim;
  const int64_t blocks = stride / 16;
  std::vector<uint32_t>& order = out.order;
  if (given != nullptr) {
    order = *given;
  } else {
    order.resize(static_cast<size_t>(k));
    for (int64_t j = 0; j < k; ++j)
      order[j] = static_cast<uint32_t>(j);
    kd_order(rows, dim, order, 0, k);
  }
  out.block_columns = make_aligned_floats(static_cast<size_t>(dim * stride));
  out.block_ids.assign(static_cast<size_t>(stride), kNoCandidate);
  // 16 floats of slack: the AVX2 selection loads boxes 8 at a time past the last one.
  out.box_lo = make_aligned_floats(static_cast<size_t>(dim * blocks + 16));
  out.box_hi = make_aligned_floats(static_cast<size_t>(dim * blocks + 16));
  for (int64_t b = 0; b < blocks; ++b) {
    for (int d = 0; d < dim; ++d) {
      out.box_lo[d * blocks + b] = std::numeric_limits<float>::infinity();
      out.box_hi[d * blocks + b] = -std::numeric_limits<float>::infinity();
    }
  }
  for (int64_t i = 0; i < k; ++i) {
    const int64_t j = order[i];
    const int64_t b = i / 16;
    out.block_ids[i] = order[i];
    for (int d = 0; d < dim; ++d) {
      const float v = rows[j * dim + d];
      out.block_columns[d * stride + i] = v;
      out.box_lo[d * blocks + b] = std::min(out.box_lo[d * blocks + b], v);
      out.box_hi[d * blocks + b] = std::max(out.box_hi[d * blocks + b], v);
    }
  }
  out.view.block_columns = out.block_columns.get();
  out.view.block_ids = out.block_ids.data();
  out.view.box_lo = out.box_lo.get();
  out.view.box_hi = out.box_hi.get();
}

}  // namespace

PreparedCentroids prepare_centroids(std::span<const float> rows, int dim, BlockLayout layout) {
  const int64_t k = static_cast<int64_t>(rows.size()) / dim;
  const int64_t groups = (k + kGroupSize - 1) / kGroupSize;
  const int64_t stride = (k + 15) / 16 * 16;
  PreparedCentroids out{make_aligned_floats(static_cast<size_t>(groups * dim * kGroupSize)),
                        make_aligned_floats(static_cast<size_t>(groups * kGroupSize)),
                        {},
                        {},
                        {},
                        {},
                        {},
                        {}};
  for (int64_t j = 0; j < groups * kGroupSize; ++j) {
    float* group = out.grouped.get() + (j / kGroupSize) * dim * kGroupSize;
    const int slot = static_cast<int>(j % kGroupSize);
    if (j >= k) {
      // Coordinates stay 0, so the score stays -inf: padding never wins.
      out.half_norms[j] = -std::numeric_limits<float>::infinity();
      continue;
    }
    float norm = 0.f;
    for (int d = 0; d < dim; ++d) {
      const float c = rows[j * dim + d];
      norm = std::fma(c, c, norm);
      group[d * kGroupSize + slot] = c;
    }
    out.half_norms[j] = -0.5f * norm;
  }
  out.view.rows = rows.data();
  out.view.grouped = out.grouped.get();
  out.view.half_norms = out.half_norms.get();
  out.view.column_stride = stride;
  out.view.k = k;
  out.view.groups = groups;
  out.view.dim = dim;
  if (layout.blocks) prepare_blocks(rows, dim, stride, layout.order, out);
  return out;
}

void assign_all(const KernelSet& kernels, int threads, const CpuResidentPoints& points,
                const CentroidSet& centroids, uint32_t* codes, float* dist) {
  // Tiles handed to a thread at a time: small enough to balance two noisy cores,
  // large enough that scheduling costs nothing next to k * dim FMAs per point.
  constexpr int64_t kChunkTiles = 16;
  const int64_t chunks = (points.tiles() + kChunkTiles - 1) / kChunkTiles;
#pragma omp parallel for schedule(dynamic) num_threads(threads)
  for (int64_t chunk = 0; chunk < chunks; ++chunk) {
    const int64_t first = chunk * kChunkTiles;
    const int64_t last = std::min(first + kChunkTiles, points.tiles());
    kernels.assign_tiles(centroids, {points.data(), points.size(), first, last, codes, dist});
  }
}

namespace {

// Tiles of accumulate() handed to a thread at a time.
constexpr int64_t kAccumulateChunkTiles = 16;

// Adds weight * quantize(x) of the tiles [first, last) into one thread's sums.
void accumulate_tiles(const CpuResidentPoints& resident, const uint32_t* codes,
                      const FixedPoint& fp, int64_t first, int64_t last, int64_t* sums,
                      uint64_t* counts) {
  const int dim = resident.dim();
  for (int64_t t = first; t < last; ++t) {
    const float* tile = resident.data() + t * dim * kTileWidth;
    for (int lane = 0; lane < kTileWidth; ++lane) {
      const int64_t p = t * kTileWidth + lane;
      if (p >= resident.size()) break;
      const int64_t w = resident.weights()[p];
      int64_t* row = sums + int64_t{codes[p]} * dim;
      counts[codes[p]] += static_cast<uint64_t>(w);
      for (int d = 0; d < dim; ++d) {
        const float x = tile[d * kTileWidth + lane];
        row[d] += w * fp.quantize(x);
      }
    }
  }
}

}  // namespace

void accumulate_all(int threads, const CpuResidentPoints& resident, const uint32_t* codes,
                    const FixedPoint& fp, std::span<int64_t> sums, std::span<uint64_t> counts) {
  const int dim = resident.dim();
  const int64_t k = static_cast<int64_t>(counts.size());
  const int64_t width = k * dim;
  std::vector<int64_t> partial_sums(static_cast<size_t>(threads * width));
  std::vector<uint64_t> partial_counts(static_cast<size_t>(threads * k));
  const int64_t chunks = (resident.tiles() + kAccumulateChunkTiles - 1) / kAccumulateChunkTiles;
#pragma omp parallel num_threads(threads)
  {
    const int tid = omp_get_thread_num();
    int64_t* my_sums = partial_sums.data() + tid * width;
    uint64_t* my_counts = partial_counts.data() + tid * k;
#pragma omp for schedule(static)
    for (int64_t chunk = 0; chunk < chunks; ++chunk) {
      const int64_t first = chunk * kAccumulateChunkTiles;
      const int64_t last = std::min(first + kAccumulateChunkTiles, resident.tiles());
      accumulate_tiles(resident, codes, fp, first, last, my_sums, my_counts);
    }
  }
  // Integer sums: any split across threads gives the same bits.
  for (int64_t i = 0; i < width; ++i) {
    int64_t total = 0;
    for (int t = 0; t < threads; ++t)
      total += partial_sums[t * width + i];
    sums[i] = total;
  }
  for (int64_t j = 0; j < k; ++j) {
    uint64_t total = 0;
    for (int t = 0; t < threads; ++t)
      total += partial_counts[t * k + j];
    counts[j] = total;
  }
}

}  // namespace cpu

namespace {

using cpu::CpuResidentPoints;
using cpu::KernelSet;
using cpu::kTileWidth;
using cpu::PreparedCentroids;

constexpr const char* kContext = "cpu backend";

void score_candidates_scalar8(const cpu::CandidateBlock& block, int64_t groups, const float* tile,
                              uint32_t* codes, float* dist) {
  cpu::score_candidates_scalar(block, groups, tile, kTileWidth, codes, dist);
}

constexpr KernelSet kScalarKernels{"cpu-scalar",
                                   cpu::assign_tiles_scalar,
                                   score_candidates_scalar8,
                                   kTileWidth,
                                   cpu::select_levels_scalar,
                                   cpu::fill_block_scalar,
                                   cpu::own_distances_scalar,
                                   cpu::select_neighbors_scalar};
constexpr KernelSet kAvx2Kernels{"cpu-avx2",
                                 cpu::assign_tiles_avx2,
                                 cpu::score_candidates_avx2,
                                 kTileWidth,
                                 cpu::select_levels_avx2,
                                 cpu::fill_block_avx2,
                                 cpu::own_distances_avx2,
                                 cpu::select_neighbors_avx2};
constexpr KernelSet kAvx512Kernels{"cpu-avx512",
                                   cpu::assign_tiles_avx512,
                                   cpu::score_candidates_avx512,
                                   2 * kTileWidth,
                                   cpu::select_levels_avx512,
                                   cpu::fill_block_avx2,
                                   cpu::own_distances_avx2,
                                   cpu::select_neighbors_avx2};

const KernelSet& choose_kernels(const CpuBackendOptions& options) {
  if (options.force_scalar || options.widest_isa == CpuIsa::kScalar || !cpu::cpu_has_avx2_fma()) {
    return kScalarKernels;
  }
  if (options.widest_isa == CpuIsa::kAvx2 || !cpu::cpu_has_avx512()) return kAvx2Kernels;
  return kAvx512Kernels;
}

const CpuResidentPoints& as_cpu(const ResidentPoints& points) {
  const auto* cpu_points = dynamic_cast<const CpuResidentPoints*>(&points);
  PGKM_EXPECTS(cpu_points != nullptr, kContext, "points were uploaded by another backend");
  return *cpu_points;
}

class CpuBackend final : public Backend {
 public:
  explicit CpuBackend(const CpuBackendOptions& options)
      : threads_(options.threads > 0 ? options.threads : omp_get_max_threads()),
        kernels_(choose_kernels(options)) {
    PGKM_EXPECTS(options.threads >= 0, kContext, "threads=", options.threads, " is negative");
  }

  std::string name() const override { return kernels_.name; }

  std::unique_ptr<ResidentPoints> upload(std::span<const float> points,
                                         std::span<const uint32_t> weights, int dim) override;
  void assign(const ResidentPoints& points, std::span<const float> centroids,
              std::span<uint32_t> codes, std::span<float> dist) override;
  void assign_pruned(const ResidentPoints& points, std::span<const float> centroids,
                     std::span<const uint32_t> previous, std::span<uint32_t> codes,
                     std::span<float> dist, SearchStats& stats) override;
  void accumulate(const ResidentPoints& points, std::span<const uint32_t> codes,
                  const FixedPoint& fp, std::span<int64_t> sums,
                  std::span<uint64_t> counts) override;
  void assign_accumulate_pruned(const ResidentPoints& points, std::span<const float> centroids,
                                std::span<const uint32_t> previous, const FixedPoint& fp,
                                std::span<uint32_t> codes, std::span<float> dist,
                                std::span<int64_t> sums, std::span<uint64_t> counts,
                                SearchStats& stats) override;

 private:
  // Checks the arguments common to assign and assign_pruned (whose dist may be empty:
  // dist_optional).
  void check_assign(const CpuResidentPoints& resident, std::span<const float> centroids,
                    std::span<uint32_t> codes, std::span<float> dist,
                    bool dist_optional = false) const;

  int threads_;
  const KernelSet& kernels_;
};

std::unique_ptr<ResidentPoints> CpuBackend::upload(std::span<const float> points,
                                                   std::span<const uint32_t> weights, int dim) {
  check_upload(points, weights, dim, kContext);
  return std::make_unique<CpuResidentPoints>(points, weights, dim);
}

void CpuBackend::check_assign(const CpuResidentPoints& resident, std::span<const float> centroids,
                              std::span<uint32_t> codes, std::span<float> dist,
                              bool dist_optional) const {
  const int dim = resident.dim();
  const int64_t n = resident.size();
  const size_t dist_size = dist_optional && dist.empty() ? static_cast<size_t>(n) : dist.size();
  check_assign_args(n, dim, centroids.size(), codes.size(), dist_size, kContext);
}

void CpuBackend::assign(const ResidentPoints& points, std::span<const float> centroids,
                        std::span<uint32_t> codes, std::span<float> dist) {
  const CpuResidentPoints& resident = as_cpu(points);
  check_assign(resident, centroids, codes, dist);
  const PreparedCentroids prepared = cpu::prepare_centroids(centroids, resident.dim());
  cpu::assign_all(kernels_, threads_, resident, prepared.view, codes.data(), dist.data());
}

void CpuBackend::assign_pruned(const ResidentPoints& points, std::span<const float> centroids,
                               std::span<const uint32_t> previous, std::span<uint32_t> codes,
                               std::span<float> dist, SearchStats& stats) {
  const CpuResidentPoints& resident = as_cpu(points);
  check_assign(resident, centroids, codes, dist, true);
  const int64_t k = static_cast<int64_t>(centroids.size()) / resident.dim();
  check_previous_codes(previous, codes, resident.size(), k, kContext);
  cpu::assign_pruned(kernels_, threads_, resident, centroids, previous, codes, dist, stats);
}

void CpuBackend::accumulate(const ResidentPoints& points, std::span<const uint32_t> codes,
                            const FixedPoint& fp, std::span<int64_t> sums,
                            std::span<uint64_t> counts) {
  const CpuResidentPoints& resident = as_cpu(points);
  check_accumulate_args(resident.size(), resident.dim(), codes, sums.size(), counts.size(),
                        kContext);
  cpu::accumulate_all(threads_, resident, codes.data(), fp, sums, counts);
}

void CpuBackend::assign_accumulate_pruned(const ResidentPoints& points,
                                          std::span<const float> centroids,
                                          std::span<const uint32_t> previous, const FixedPoint& fp,
                                          std::span<uint32_t> codes, std::span<float> dist,
                                          std::span<int64_t> sums, std::span<uint64_t> counts,
                                          SearchStats& stats) {
  const CpuResidentPoints& resident = as_cpu(points);
  check_assign(resident, centroids, codes, dist, true);
  const int64_t k = static_cast<int64_t>(centroids.size()) / resident.dim();
  check_previous_codes(previous, codes, resident.size(), k, kContext);
  PGKM_EXPECTS(sums.size() == static_cast<size_t>(k * resident.dim()) &&
                   counts.size() == static_cast<size_t>(k),
               kContext, "sums has ", sums.size(), " values and counts ", counts.size(),
               "; expected ", k * resident.dim(), " and ", k);
  cpu::assign_pruned(kernels_, threads_, resident, centroids, previous, codes, dist, stats, &fp,
                     {sums, counts});
}

}  // namespace

std::unique_ptr<Backend> make_cpu_backend(const CpuBackendOptions& options) {
  return std::make_unique<CpuBackend>(options);
}

}  // namespace pgkm
