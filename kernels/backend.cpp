// Default implementations of the Backend entry points that a backend may leave alone,
// and the argument checks every backend shares.
#include "kernels/backend.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "core/errors.h"

namespace pgkm {

void check_points(std::span<const float> points, std::span<const uint32_t> weights, int dim,
                  const std::string& context) {
  PGKM_EXPECTS(dim >= kMinBlockSize && dim <= kMaxBlockSize, context, "block size ", dim,
               " is outside ", kMinBlockSize, "..", kMaxBlockSize);
  const auto b = static_cast<size_t>(dim);
  PGKM_EXPECTS(points.size() % b == 0, context, points.size(),
               " values do not make whole vectors of size ", dim);
  const size_t n = points.size() / b;
  PGKM_EXPECTS(weights.empty() || weights.size() == n, context, points.size(),
               " point values do not match ", weights.size(), " weights of dim ", dim);
  for (size_t i = 0; i < points.size(); ++i) {
    PGKM_EXPECTS(std::isfinite(points[i]), context, "value ", points[i], " at vector ", i / b,
                 ", coordinate ", i % b, " is not finite");
    PGKM_EXPECTS(std::fabs(points[i]) <= 1e18f, context, "value ", points[i], " at vector ", i / b,
                 " is too large to cluster (|x| > 1e18)");
  }
  for (size_t p = 0; p < weights.size(); ++p) {
    PGKM_EXPECTS(weights[p] >= 1, context, "weight of point ", p, " is 0");
  }
}

void check_upload(std::span<const float> points, std::span<const uint32_t> weights, int dim,
                  const std::string& context) {
  check_points(points, weights, dim, context);
  PGKM_EXPECTS(points.size() == weights.size() * static_cast<size_t>(dim), context, points.size(),
               " point values do not match ", weights.size(), " weights of dim ", dim);
}

void check_centroids(size_t centroid_values, int dim, const std::string& context) {
  PGKM_EXPECTS(dim >= kMinBlockSize && dim <= kMaxBlockSize, context, "block size ", dim,
               " is outside ", kMinBlockSize, "..", kMaxBlockSize);
  PGKM_EXPECTS(centroid_values != 0 && centroid_values % static_cast<size_t>(dim) == 0, context,
               centroid_values, " centroid values are not a positive multiple of dim ", dim);
  // Kernels address centroids with 32-bit offsets code * dim.
  PGKM_EXPECTS(centroid_values <= size_t{std::numeric_limits<int32_t>::max()}, context,
               centroid_values, " centroid values are too many");
}

void check_assign_args(int64_t n, int dim, size_t centroid_values, size_t codes, size_t dist,
                       const std::string& context) {
  check_centroids(centroid_values, dim, context);
  PGKM_EXPECTS(codes == static_cast<size_t>(n) && dist == static_cast<size_t>(n), context,
               "codes (", codes, ") and dist (", dist, ") must hold ", n, " points");
}

namespace {

void check_accumulate_sizes(int64_t n, int dim, size_t codes, size_t sums, size_t counts,
                            const std::string& context) {
  PGKM_EXPECTS(codes == static_cast<size_t>(n), context, codes, " codes for ", n, " points");
  PGKM_EXPECTS(sums == counts * static_cast<size_t>(dim), context, "sums hold ", sums,
               " values, expected k=", counts, " x dim=", dim);
}

}  // namespace

void check_accumulate_args(int64_t n, int dim, std::span<const uint32_t> codes, size_t sums,
                           size_t counts, const std::string& context) {
  check_accumulate_sizes(n, dim, codes.size(), sums, counts, context);
  for (size_t p = 0; p < codes.size(); ++p) {
    PGKM_EXPECTS(codes[p] < counts, context, "code ", codes[p], " of point ", p,
                 " is not < k=", counts);
  }
}

void check_assign_accumulate_args(int64_t n, int dim, size_t centroid_values, size_t codes,
                                  size_t dist, size_t sums, size_t counts,
                                  const std::string& context) {
  check_assign_args(n, dim, centroid_values, codes, dist, context);
  check_accumulate_sizes(n, dim, codes, sums, counts, context);
  const size_t k = centroid_values / static_cast<size_t>(dim);
  PGKM_EXPECTS(counts == k, context, "counts hold ", counts, " values, expected k=", k,
               " centroids");
}

void check_previous_codes(std::span<const uint32_t> previous, std::span<const uint32_t> codes,
                          int64_t n, int64_t k, const std::string& context) {
  PGKM_EXPECTS(previous.size() == static_cast<size_t>(n), context, previous.size(),
               " previous codes for ", n, " points");
  const auto address = [](const uint32_t* p) { return reinterpret_cast<uintptr_t>(p); };
  const uintptr_t bytes = static_cast<uintptr_t>(n) * sizeof(uint32_t);
  PGKM_EXPECTS(previous.data() == codes.data() ||
                   address(previous.data()) + bytes <= address(codes.data()) ||
                   address(codes.data()) + bytes <= address(previous.data()),
               context, "previous codes and codes overlap without being the same span");
  uint32_t largest = 0;  // one branch-free pass; the message names the first bad code
  for (uint32_t a : previous)
    largest = std::max(largest, a);
  if (largest < k) return;
  const auto bad =
      std::find_if(previous.begin(), previous.end(), [&](uint32_t a) { return a >= k; });
  PGKM_EXPECTS(false, context, "previous code ", *bad, " of point ", bad - previous.begin(),
               " is not < k=", k);
}

void Backend::assign_pruned(const ResidentPoints& points, std::span<const float> centroids,
                            std::span<const uint32_t> previous, std::span<uint32_t> codes,
                            std::span<float> dist, SearchStats& stats) {
  const int64_t n = points.size();
  const int64_t k = static_cast<int64_t>(centroids.size()) / points.dim();
  check_previous_codes(previous, codes, n, k, name());
  std::vector<float> unwanted(dist.empty() ? static_cast<size_t>(n) : 0);
  assign(points, centroids, codes, dist.empty() ? std::span<float>(unwanted) : dist);
  stats = {n, k, n * k, n * k, n};
}

}  // namespace pgkm
