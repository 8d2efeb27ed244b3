// Portable assignment kernel: the arithmetic contract of Backend::assign written out
// literally, one point at a time. It is the reference the AVX2 kernel must match bit
// for bit, and the path used on CPUs without AVX2/FMA.
#include <cmath>
#include <cstdint>
#include <limits>

#include "kernels/backend.h"
#include "kernels/cpu/assign_kernels.h"

namespace pgkm::cpu {
namespace {

// Lowest j with the largest score_j = fma chain of x_d * c_jd from -0.5 |c_j|^2.
uint32_t nearest_centroid(const CentroidSet& c, const float* x) {
  const int dim = c.dim;
  float best = -std::numeric_limits<float>::infinity();
  uint32_t best_j = 0;
  for (int64_t j = 0; j < c.k; ++j) {
    const float* cj = c.rows + j * dim;
    float acc = c.half_norms[j];
    for (int d = 0; d < dim; ++d)
      acc = std::fma(x[d], cj[d], acc);
    if (acc > best) {
      best = acc;
      best_j = static_cast<uint32_t>(j);
    }
  }
  return best_j;
}

float squared_distance(const float* x, const float* c, int dim) {
  float acc = 0.f;
  for (int d = 0; d < dim; ++d) {
    const float t = x[d] - c[d];
    acc = std::fma(t, t, acc);
  }
  return acc;
}

}  // namespace

void assign_tiles_scalar(const CentroidSet& centroids, const TileRange& range) {
  const int dim = centroids.dim;
  float x[kMaxBlockSize];
  for (int64_t t = range.first; t < range.last; ++t) {
    const float* tile = range.tiles + t * dim * kTileWidth;
    for (int lane = 0; lane < kTileWidth; ++lane) {
      const int64_t p = t * kTileWidth + lane;
      if (p >= range.n) break;
      for (int d = 0; d < dim; ++d)
        x[d] = tile[d * kTileWidth + lane];
      const uint32_t code = nearest_centroid(centroids, x);
      range.codes[p] = code;
      range.dist[p] = squared_distance(x, centroids.rows + int64_t{code} * dim, dim);
    }
  }
}

}  // namespace pgkm::cpu
