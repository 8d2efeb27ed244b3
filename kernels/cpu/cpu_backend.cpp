// The CPU backend: resident SoA point tiles, run-time choice between the AVX2 and the
// scalar assignment kernels, OpenMP over point tiles, exact fixed-point accumulation.
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

namespace pgkm {
namespace {

using cpu::CentroidSet;
using cpu::kGroupSize;
using cpu::kTileWidth;

constexpr const char* kContext = "cpu backend";
// Tiles handed to a thread at a time: small enough to balance two noisy cores,
// large enough that scheduling costs nothing next to k * dim FMAs per point.
constexpr int64_t kChunkTiles = 16;
// Cache-line alignment for the tiles, so every 32-byte row load is aligned.
constexpr std::align_val_t kAlignment{64};

struct AlignedDelete {
  void operator()(float* p) const { ::operator delete[](p, kAlignment); }
};
using AlignedFloats = std::unique_ptr<float[], AlignedDelete>;

AlignedFloats make_aligned_floats(size_t count) {
  return AlignedFloats(new (kAlignment) float[std::max<size_t>(count, 1)]());
}

// Points as [tiles][dim][kTileWidth] floats (padding lanes zero) plus their weights.
class CpuResidentPoints final : public ResidentPoints {
 public:
  CpuResidentPoints(std::span<const float> points, std::span<const uint32_t> weights, int dim)
      : n_(static_cast<int64_t>(weights.size())),
        dim_(dim),
        tiles_((n_ + kTileWidth - 1) / kTileWidth),
        data_(make_aligned_floats(static_cast<size_t>(tiles_ * dim * kTileWidth))),
        weights_(weights.begin(), weights.end()) {
    for (int64_t p = 0; p < n_; ++p) {
      float* tile = data_.get() + (p / kTileWidth) * dim * kTileWidth;
      const int lane = static_cast<int>(p % kTileWidth);
      for (int d = 0; d < dim; ++d)
        tile[d * kTileWidth + lane] = points[p * dim + d];
    }
  }

  int64_t size() const override { return n_; }
  int dim() const override { return dim_; }
  int64_t tiles() const { return tiles_; }
  const float* data() const { return data_.get(); }
  const uint32_t* weights() const { return weights_.data(); }

 private:
  int64_t n_;
  int dim_;
  int64_t tiles_;
  AlignedFloats data_;
  std::vector<uint32_t> weights_;
};

// Centroids in the kernels' layout; owns the buffers a CentroidSet points into.
struct PreparedCentroids {
  AlignedFloats grouped;
  AlignedFloats half_norms;
  CentroidSet view;
};

PreparedCentroids prepare_centroids(std::span<const float> rows, int dim) {
  const int64_t k = static_cast<int64_t>(rows.size()) / dim;
  const int64_t groups = (k + kGroupSize - 1) / kGroupSize;
  PreparedCentroids out{make_aligned_floats(static_cast<size_t>(groups * dim * kGroupSize)),
                        make_aligned_floats(static_cast<size_t>(groups * kGroupSize)),
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
  out.view = {rows.data(), out.grouped.get(), out.half_norms.get(), k, groups, dim};
  return out;
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
        use_avx2_(!options.force_scalar && cpu::cpu_has_avx2_fma()) {
    PGKM_EXPECTS(options.threads >= 0, kContext, "threads=", options.threads, " is negative");
  }

  std::string name() const override { return use_avx2_ ? "cpu-avx2" : "cpu-scalar"; }

  std::unique_ptr<ResidentPoints> upload(std::span<const float> points,
                                         std::span<const uint32_t> weights, int dim) override;
  void assign(const ResidentPoints& points, std::span<const float> centroids,
              std::span<uint32_t> codes, std::span<float> dist) override;
  void accumulate(const ResidentPoints& points, std::span<const uint32_t> codes,
                  const FixedPoint& fp, std::span<int64_t> sums,
                  std::span<uint64_t> counts) override;

 private:
  int threads_;
  bool use_avx2_;
};

std::unique_ptr<ResidentPoints> CpuBackend::upload(std::span<const float> points,
                                                   std::span<const uint32_t> weights, int dim) {
  check_upload(points, weights, dim, kContext);
  return std::make_unique<CpuResidentPoints>(points, weights, dim);
}

void CpuBackend::assign(const ResidentPoints& points, std::span<const float> centroids,
                        std::span<uint32_t> codes, std::span<float> dist) {
  const CpuResidentPoints& resident = as_cpu(points);
  const int dim = resident.dim();
  const int64_t n = resident.size();
  check_assign_args(n, dim, centroids.size(), codes.size(), dist.size(), kContext);
  const PreparedCentroids prepared = prepare_centroids(centroids, dim);
  const auto kernel = use_avx2_ ? cpu::assign_tiles_avx2 : cpu::assign_tiles_scalar;
  const int64_t chunks = (resident.tiles() + kChunkTiles - 1) / kChunkTiles;
#pragma omp parallel for schedule(dynamic) num_threads(threads_)
  for (int64_t chunk = 0; chunk < chunks; ++chunk) {
    const int64_t first = chunk * kChunkTiles;
    const int64_t last = std::min(first + kChunkTiles, resident.tiles());
    kernel(prepared.view, {resident.data(), n, first, last, codes.data(), dist.data()});
  }
}

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

void CpuBackend::accumulate(const ResidentPoints& points, std::span<const uint32_t> codes,
                            const FixedPoint& fp, std::span<int64_t> sums,
                            std::span<uint64_t> counts) {
  const CpuResidentPoints& resident = as_cpu(points);
  const int dim = resident.dim();
  const int64_t n = resident.size();
  const int64_t k = static_cast<int64_t>(counts.size());
  check_accumulate_args(n, dim, codes, sums.size(), counts.size(), kContext);
  const int64_t width = k * dim;
  std::vector<int64_t> partial_sums(static_cast<size_t>(threads_ * width));
  std::vector<uint64_t> partial_counts(static_cast<size_t>(threads_ * k));
  const int64_t chunks = (resident.tiles() + kChunkTiles - 1) / kChunkTiles;
#pragma omp parallel num_threads(threads_)
  {
    const int tid = omp_get_thread_num();
    int64_t* my_sums = partial_sums.data() + tid * width;
    uint64_t* my_counts = partial_counts.data() + tid * k;
#pragma omp for schedule(static)
    for (int64_t chunk = 0; chunk < chunks; ++chunk) {
      const int64_t first = chunk * kChunkTiles;
      const int64_t last = std::min(first + kChunkTiles, resident.tiles());
      accumulate_tiles(resident, codes.data(), fp, first, last, my_sums, my_counts);
    }
  }
  // Integer sums: any split across threads gives the same bits.
  for (int64_t i = 0; i < width; ++i) {
    int64_t total = 0;
    for (int t = 0; t < threads_; ++t)
      total += partial_sums[t * width + i];
    sums[i] = total;
  }
  for (int64_t j = 0; j < k; ++j) {
    uint64_t total = 0;
    for (int t = 0; t < threads_; ++t)
      total += partial_counts[t * k + j];
    counts[j] = total;
  }
}

}  // namespace

std::unique_ptr<Backend> make_cpu_backend(const CpuBackendOptions& options) {
  return std::make_unique<CpuBackend>(options);
}

}  // namespace pgkm
