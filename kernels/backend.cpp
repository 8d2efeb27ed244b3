#include "kernels/backend.h"

#include <cmath>

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

}  // namespace pgkm
