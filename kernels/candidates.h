// Exact candidate search for k-means reassignment, independent of any backend.
//
// A point x whose previous code is a can only move to a centroid near c_a: with
// u = |x - c_a|, a centroid k with |c_a - c_k| > 2u is farther from x than c_a. The
// scores of the arithmetic contract (backend.h) are rounded, so the radius here is
// widened by a rigorous bound on that rounding (candidates.cpp derives it): every
// centroid outside it scores strictly below c_a's float score, so the brute-force
// winner, ties included, is always among the candidates.
//
// Distances between centroids are compared as pair keys, the contract's dist chain on
// two centroids (pair_key). A key is exact float arithmetic that every backend computes
// to the same bits, so every backend builds the same candidate lists. The CPU backend
// builds one cluster's list at a time; build_candidate_lists makes all of them at once
// (CSR) for a backend that wants them in device memory.
#pragma once

#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <span>
#include <vector>

namespace pgkm::candidates {

// key = fma(t[dim-1], t[dim-1], ... fma(t[0], t[0], 0.f)), t[d] = c[d] - a[d]: the dist
// chain of the contract between centroids a and c, each [dim]. Symmetric bit for bit
// (c[d] - a[d] rounds to exactly -(a[d] - c[d])). Never negative.
float pair_key(const float* a, const float* c, int dim);

// An upper bound of max_j |c_j| (exact Euclidean norm) over rows: [k, dim] row-major.
double max_norm_upper(std::span<const float> rows, int dim);

// An upper bound of the exact |x - c|^2; x, c: [dim].
double squared_distance_upper(const float* x, const float* c, int dim);

// True when no score, norm or pair-key chain of the contract can overflow for points
// with |x| <= max_point_norm and centroids with |c| <= max_centroid_norm, the condition
// the rounding bound needs. Otherwise (|x||c| near 1e38) callers must use brute force.
bool pruning_is_safe(double max_point_norm, double max_centroid_norm);

// The largest pair key a candidate of a point can have: if the brute-force code of x
// is k (ties included), then pair_key(c_a, c_k) <= key_limit(...), where a is x's
// previous code, dist2_upper >= |x - c_a|^2 and max_centroid_norm >= max_j |c_j|.
// Rounded up to a float; +inf when it exceeds the float range (every centroid).
float key_limit(int dim, double dist2_upper, double max_centroid_norm);

// key_limit for many points of one pass: the constants of the bound computed once.
class KeyLimit {
 public:
  KeyLimit(int dim, double max_centroid_norm);

  // key_limit(dim, dist2_upper, max_centroid_norm).
  float operator()(double dist2_upper) const { return limit(dist2_upper); }

  // The key limit of a point whose contract distance (the dist chain) to its previous
  // centroid is `dist`: operator() of an upper bound of the exact squared distance
  // (candidates.cpp, 5). Non-decreasing in dist.
  float of_distance(float dist) const;

 private:
  float limit(double dist2_upper) const {
    const double u = std::sqrt(dist2_upper);
    const double e = e0_ + e1_ * u;  // score error bound E for |x| <= C + u
    const double r = u + std::sqrt(u * u + 4.0 * e);
    // Rounds up: the nearest float to limit (1 + 2^-23) + 2^-149 is >= limit.
    const double up = (scale_ * r * r + abs_) * inflate_ * (1.0 + 0x1p-23) + 0x1p-149;
    return up < 0x1.fffffep127 ? static_cast<float>(up) : std::numeric_limits<float>::infinity();
  }

  double e0_;          // gamma_{b+2} 2 C^2 + (2b+2) eta
  double e1_;          // gamma_{b+2} C
  double scale_;       // 1 + gamma_{b+2}
  double abs_;         // (b+1) eta
  double inflate_;     // covers the double rounding of this evaluation
  double dist_scale_;  // of_distance: |x - c|^2 <= (dist + dist_abs_) * dist_scale_
  double dist_abs_;
};

// The box key of c_a and a box [lo, hi] (per coordinate) is pair_key's chain on
// t[d] = max(lo[d] - a[d], a[d] - hi[d], 0.f). If it exceeds block_limit(dim, limit),
// no centroid in the box has a pair key <= limit with c_a: a whole block of centroids
// is skipped before any of its keys is computed.
float block_limit(int dim, float limit);

// A candidate as one sortable word: key bits (keys are >= 0, so their bits order like
// the keys) above the centroid index. Ascending order is (key, index).
inline uint64_t pack_candidate(float key, uint32_t id) {
  return (uint64_t{std::bit_cast<uint32_t>(key)} << 32) | id;
}
inline uint32_t candidate_id(uint64_t packed) {
  return static_cast<uint32_t>(packed);
}
inline float candidate_key(uint64_t packed) {
  return std::bit_cast<float>(static_cast<uint32_t>(packed >> 32));
}

// Every cluster's candidates, compressed rows. Cluster a's candidates are
// ids[offsets[a] .. offsets[a+1]), ascending by (key, index), with their keys beside.
struct CandidateLists {
  std::vector<int64_t> offsets;  // [k + 1]
  std::vector<uint32_t> ids;     // [offsets[k]] centroid indices
  std::vector<float> keys;       // [offsets[k]] pair_key(c_a, c_id)
};

// The candidates of every cluster a: the centroids j with pair_key(c_a, c_j) <=
// limits[a]. centroids: [k, dim] row-major; limits: [k], e.g. the largest key_limit of
// the points whose previous code is a (a negative limit leaves the list empty). Memory:
// 8 bytes per candidate. Portable scalar code (std::fma), O(k^2 dim).
CandidateLists build_candidate_lists(std::span<const float> centroids, int dim,
                                     std::span<const float> limits);

}  // namespace pgkm::candidates
