// Argument checks of the CUDA backend (see checks.h). Keep the texts equal to the CPU
// backend's: tests/test_cuda_backend.cpp compares them.
#include "kernels/cuda/checks.h"

#include <cmath>
#include <limits>

#include "core/errors.h"
#include "core/limits.h"

namespace pgkm::cuda {

void check_upload(std::span<const float> points, std::span<const uint32_t> weights, int dim) {
  PGKM_EXPECTS(dim >= 1 && dim <= kMaxBlockSize, kContext, "block size ", dim, " is outside 1..",
               kMaxBlockSize);
  PGKM_EXPECTS(points.size() == weights.size() * dim, kContext, points.size(),
               " point values do not match ", weights.size(), " weights of dim ", dim);
  for (size_t i = 0; i < points.size(); ++i) {
    PGKM_EXPECTS(std::isfinite(points[i]), kContext, "point value ", i, " is ", points[i]);
  }
  for (size_t p = 0; p < weights.size(); ++p) {
    PGKM_EXPECTS(weights[p] >= 1, kContext, "weight of point ", p, " is 0");
  }
}

void check_centroids(size_t centroid_values, int dim) {
  PGKM_EXPECTS(dim >= 1 && dim <= kMaxBlockSize, kContext, "block size ", dim, " is outside 1..",
               kMaxBlockSize);
  PGKM_EXPECTS(centroid_values != 0 && centroid_values % dim == 0, kContext, centroid_values,
               " centroid values are not a positive multiple of dim ", dim);
  PGKM_EXPECTS(centroid_values <= size_t{std::numeric_limits<int32_t>::max()}, kContext,
               centroid_values, " centroid values are too many");
}

void check_assign(int64_t n, int dim, size_t centroid_values, size_t codes, size_t dist) {
  check_centroids(centroid_values, dim);
  PGKM_EXPECTS(codes == static_cast<size_t>(n) && dist == static_cast<size_t>(n), kContext,
               "codes (", codes, ") and dist (", dist, ") must hold ", n, " points");
}

namespace {

void check_accumulate_sizes(int64_t n, int dim, size_t codes, size_t sums, size_t counts) {
  const int64_t k = static_cast<int64_t>(counts);
  PGKM_EXPECTS(codes == static_cast<size_t>(n), kContext, codes, " codes for ", n, " points");
  PGKM_EXPECTS(sums == counts * dim, kContext, "sums hold ", sums, " values, expected k=", k,
               " x dim=", dim);
}

}  // namespace

void check_accumulate(int64_t n, int dim, std::span<const uint32_t> codes, size_t sums,
                      size_t counts) {
  check_accumulate_sizes(n, dim, codes.size(), sums, counts);
  const int64_t k = static_cast<int64_t>(counts);
  for (size_t p = 0; p < codes.size(); ++p) {
    PGKM_EXPECTS(codes[p] < k, kContext, "code ", codes[p], " of point ", p, " is not < k=", k);
  }
}

void check_assign_accumulate(int64_t n, int dim, size_t centroid_values, size_t codes, size_t dist,
                             size_t sums, size_t counts) {
  check_assign(n, dim, centroid_values, codes, dist);
  check_accumulate_sizes(n, dim, codes, sums, counts);
  const size_t k = centroid_values / static_cast<size_t>(dim);
  PGKM_EXPECTS(counts == k, kContext, "counts hold ", counts, " values, expected k=", k,
               " centroids");
}

}  // namespace pgkm::cuda
