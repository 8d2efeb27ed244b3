// Default implementations of the Backend entry points that a backend may leave alone.
#include "kernels/backend.h"

#include "core/errors.h"

namespace pgkm {

void Backend::assign_pruned(const ResidentPoints& points, std::span<const float> centroids,
                            std::span<const uint32_t> previous, std::span<uint32_t> codes,
                            std::span<float> dist, SearchStats& stats) {
  const int64_t n = points.size();
  PGKM_EXPECTS(previous.size() == static_cast<size_t>(n), name(), previous.size(),
               " previous codes for ", n, " points");
  assign(points, centroids, codes, dist);
  const int64_t k = static_cast<int64_t>(centroids.size()) / points.dim();
  stats = {n, k, n * k, n * k, n};
}

}  // namespace pgkm
