// A weighted point set: the unit every clustering step in engine/ works on.
//
// A layer's subvectors are deduplicated once (deduplicate below): identical
// subvectors become one point whose weight is how many there were. Lloyd's
// algorithm on weighted distinct points gives the same clusters as on all
// subvectors, and the partitioning steps of PG k-means need distinct points to
// guarantee non-empty pieces.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "kernels/fixed_point.h"

namespace pgkm {

struct PointSet {
  int dim = 0;                   // block size b
  std::vector<float> x;          // [size(), dim] row-major
  std::vector<uint32_t> weight;  // [size()] multiplicity, >= 1

  int64_t size() const { return static_cast<int64_t>(weight.size()); }
  std::span<const float> row(int64_t i) const {
    return {x.data() + static_cast<size_t>(i) * static_cast<size_t>(dim), static_cast<size_t>(dim)};
  }
  uint64_t total_weight() const;
  // The largest |x| over all coordinates (0 for an empty set).
  float max_abs() const;
};

struct Deduplicated {
  PointSet points;                        // distinct vectors, in order of first occurrence
  std::vector<uint32_t> source_to_point;  // [n] index of each input vector's point
};

// Groups identical vectors (bitwise equal after turning -0.0 into +0.0).
// x: [n, dim] row-major.
Deduplicated deduplicate(std::span<const float> x, int dim);

// Gives every distinct point of `d` the sum of its source vectors' weights instead of
// their number: vector_weights [n] (one per input vector of deduplicate, each >= 1).
// Integer sums, so the result does not depend on the order or the thread count. Throws
// InputError naming `layer` when a point's weight would not fit in 32 bits.
void apply_vector_weights(Deduplicated& d, std::span<const uint32_t> vector_weights,
                          const std::string& layer);

// Exact weighted mean of the points `members` (indices into `points`), written to
// `out` [dim]. Uses fixed-point sums, so the result does not depend on the order
// of `members` or on the number of threads. Precondition: members is not empty.
void exact_mean(const PointSet& points, std::span<const uint32_t> members, const FixedPoint& fp,
                std::span<float> out);

// The integers behind exact_mean: sums [dim] gets sum(weight * fp.quantize(x[d]))
// over `members`; returns their total weight. The mean is fp.mean(sums[d], total).
// Sums of disjoint sets add exactly, so a set's sums may also come from others'.
uint64_t exact_sums(const PointSet& points, std::span<const uint32_t> members, const FixedPoint& fp,
                    std::span<int64_t> sums);

}  // namespace pgkm
