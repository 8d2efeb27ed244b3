// The rounding margin of the exact candidate search.
//
// Notation: b = dim, u = 2^-24 (float unit roundoff), eta = 2^-150 (half the smallest
// subnormal), gamma_n = n u / (1 - n u). Every float operation of the contract, an fma
// or a subtraction, returns fl(v) with |fl(v) - v| <= u |v| + eta for the exact value
// v of that one operation, provided nothing overflows (pruning_is_safe). A subtraction
// of two floats has no eta term (a subnormal difference is exact).
//
// 1. Score error. Norm chain m_i = fl(c_i^2 + m_{i-1}) has exact partials t_i <= |c|^2,
//    so the error e_i = m_i - t_i obeys |e_i| <= (1+u)|e_{i-1}| + u|c|^2 + eta, hence
//    |e_b| <= ((1+u)^b - 1)(|c|^2 + eta/u) <= gamma_b (|c|^2 + eta/u). Halving adds at
//    most eta (exact unless subnormal). The score chain starts there and adds x_d c_d;
//    its exact partials are bounded by T = |c|^2/2 + |x||c| (Cauchy-Schwarz), so with
//    the same recursion
//      |score - (<x,c> - |c|^2/2)| <= (1+gamma_b)(gamma_b (|c|^2 + eta/u)/2 + eta)
//                                    + gamma_b (T + eta/u)
//                                 <= gamma_{b+2} (|c|^2 + |x||c|) + (2b+2) eta =: E(x,c)
//    (for b <= 32: gamma_b^2/2 <= gamma_{b+1} - gamma_b and gamma_b/u <= b+1).
// 2. Radius. Let a be x's previous code, u_x = |x - c_a|, D = |c_a - c_k|. The float
//    score of k can reach c_a's only if the exact scores differ by at most E_a + E_k,
//    i.e. |x - c_k|^2 - u_x^2 <= 2 (E_a + E_k) <= 4E, with E the bound above for
//    |c| <= C = max_j |c_j| and |x| <= C + u_x. As |x - c_k| >= D - u_x, a centroid can
//    win or tie only if D^2 - 2 u_x D - 4E <= 0:
//      D <= r = u_x + sqrt(u_x^2 + 4E).
// 3. Key. The pair key A of c_a, c_k (pair_key) rounds each difference by (1+u) and
//    the chain as in 1, so A <= (1+gamma_b)(1+u)^2 D^2 + gamma_b eta/u
//    <= (1+gamma_{b+2}) D^2 + (b+1) eta. Hence k can win only if
//      A <= (1+gamma_{b+2}) r^2 + (b+1) eta = key_limit.
// 4. Blocks. The same recursions rounding down give A >= (1-gamma_{b+2}) D^2 - (b+1) eta,
//    so a centroid with A <= limit has D^2 <= R^2 = (limit + (b+1) eta)/(1-gamma_{b+2}).
//    For a box holding c_k, D >= Dbox, the distance from c_a to the box; its chain on
//    the rounded per-coordinate distances (each at most (1+u) times the exact one)
//    gives Abox <= (1+gamma_{b+2}) Dbox^2 + (b+1) eta as in 3. So Abox >
//    (1+gamma_{b+2}) R^2 + (b+1) eta = block_limit implies Dbox > R: no candidate.
// 5. Own distances. A point's distance to its previous centroid comes from the dist
//    chain, dist = fl(sum (x_d - c_d)^2) in fma order: the chain of 3 with x for c_k, so
//    as in 4, with D = |x - c_a|, dist >= (1-gamma_{b+2}) D^2 - (b+1) eta, i.e.
//    D^2 <= (dist + (b+1) eta)/(1-gamma_{b+2}): KeyLimit::of_distance evaluates the key
//    limit at that bound. Every step of the evaluation (a sum, product or square root
//    of non-negative doubles, the final rounding to float) is correctly rounded, so
//    non-decreasing: the limit of a tile's farthest point covers the tile's others.
// The double arithmetic that evaluates these bounds (a few dozen roundings of 2^-53 on
// positive values, no underflow: the smallest float squared is a normal double) is
// covered by one factor 1 + 2^-40 per bound.
#include "kernels/candidates.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace pgkm::candidates {
namespace {

constexpr double kUnitRoundoff = 0x1p-24;
constexpr double kUnderflowUnit = 0x1p-150;
// Covers the rounding of the double arithmetic that evaluates a bound.
constexpr double kInflate = 1.0 + 0x1p-40;
// All contract chains stay below 2^127 < FLT_MAX when 4 C^2 + X C <= 2^126 (norms
// <= C^2, scores <= C^2 / 2 + X C, pair keys <= 4 C^2, each with a relative error
// far below 1).
constexpr double kSafeMagnitude = 0x1p126;

double gamma(int n) {
  return n * kUnitRoundoff / (1.0 - n * kUnitRoundoff);
}

}  // namespace

float pair_key(const float* a, const float* c, int dim) {
  float acc = 0.f;
  for (int d = 0; d < dim; ++d) {
    const float t = c[d] - a[d];
    acc = std::fma(t, t, acc);
  }
  return acc;
}

double max_norm_upper(std::span<const float> rows, int dim) {
  double max_sq = 0.0;
  for (size_t j = 0; j + dim <= rows.size(); j += static_cast<size_t>(dim)) {
    double sq = 0.0;
    for (int d = 0; d < dim; ++d)
      sq += double{rows[j + d]} * rows[j + d];
    max_sq = std::max(max_sq, sq);
  }
  return std::sqrt(max_sq * kInflate) * kInflate;
}

double squared_distance_upper(const float* x, const float* c, int dim) {
  double sq = 0.0;
  for (int d = 0; d < dim; ++d) {
    const double t = double{x[d]} - c[d];
    sq += t * t;
  }
  return sq * kInflate;
}

bool pruning_is_safe(double max_point_norm, double max_centroid_norm) {
  const double x = max_point_norm;
  const double c = max_centroid_norm;
  return std::isfinite(x) && std::isfinite(c) && 4.0 * c * c + x * c <= kSafeMagnitude;
}

KeyLimit::KeyLimit(int dim, double max_centroid_norm) {
  const double c = max_centroid_norm;
  const double g = gamma(dim + 2);
  e0_ = g * 2.0 * c * c + (2.0 * dim + 2.0) * kUnderflowUnit;
  e1_ = g * c;
  scale_ = 1.0 + g;
  abs_ = (dim + 1.0) * kUnderflowUnit;
  inflate_ = kInflate;
  dist_scale_ = kInflate / (1.0 - g);
  dist_abs_ = (dim + 1.0) * kUnderflowUnit;
}

float KeyLimit::of_distance(float dist) const {
  return limit((double{dist} + dist_abs_) * dist_scale_);
}

float key_limit(int dim, double dist2_upper, double max_centroid_norm) {
  return KeyLimit(dim, max_centroid_norm)(dist2_upper);
}

float block_limit(int dim, float limit) {
  const double reach_sq =
      (double{limit} + (dim + 1.0) * kUnderflowUnit) / (1.0 - gamma(dim + 2)) * kInflate;
  const double bound =
      ((1.0 + gamma(dim + 2)) * reach_sq + (dim + 1.0) * kUnderflowUnit) * kInflate;
  // Rounds up: the nearest float to bound (1 + 2^-23) + 2^-149 is >= bound.
  const double up = bound * (1.0 + 0x1p-23) + 0x1p-149;
  return up < 0x1.fffffep127 ? static_cast<float>(up) : std::numeric_limits<float>::infinity();
}

CandidateLists build_candidate_lists(std::span<const float> centroids, int dim,
                                     std::span<const float> limits) {
  const int64_t k = static_cast<int64_t>(centroids.size()) / dim;
  CandidateLists out;
  out.offsets.assign(static_cast<size_t>(k) + 1, 0);
  std::vector<uint64_t> row;
  for (int64_t a = 0; a < k; ++a) {
    row.clear();
    const float* ca = centroids.data() + a * dim;
    for (int64_t j = 0; j < k; ++j) {
      const float key = pair_key(ca, centroids.data() + j * dim, dim);
      if (key <= limits[static_cast<size_t>(a)]) {
        row.push_back(pack_candidate(key, static_cast<uint32_t>(j)));
      }
    }
    std::sort(row.begin(), row.end());
    for (uint64_t packed : row) {
      out.ids.push_back(candidate_id(packed));
      out.keys.push_back(candidate_key(packed));
    }
    out.offsets[static_cast<size_t>(a) + 1] = static_cast<int64_t>(out.ids.size());
  }
  return out;
}

}  // namespace pgkm::candidates
