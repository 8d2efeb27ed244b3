// Exact, order-independent accumulation of float vectors.
//
// Per-centroid sums are kept as 64-bit integers: every coordinate x is turned into
// q = round(x * 2^exponent) once, and integer addition is associative, so the sums
// are the same bits whatever order threads, GPU blocks or MPI ranks add them in.
// The exponent is chosen per layer from the largest |x| and the total weight so that
// no sum can overflow: max|x| * total_weight * 2^exponent < 2^62.
#pragma once

#include <cmath>
#include <cstdint>

namespace pgkm {

class FixedPoint {
 public:
  // Scale 2^exponent. Layers get theirs from for_data(); identical on every rank.
  explicit FixedPoint(int exponent = 0) : exponent_(exponent), scale_(std::ldexp(1.0, exponent)) {}

  // The scale for data whose largest magnitude is `max_abs` and whose point
  // weights add up to `total_weight` (the number of vectors, counting duplicates).
  static FixedPoint for_data(double max_abs, uint64_t total_weight) {
    if (max_abs <= 0.0) max_abs = 1.0;  // all-zero data: any scale is exact
    if (total_weight == 0) total_weight = 1;
    const int exp_max = std::ilogb(max_abs) + 1;  // max_abs < 2^exp_max
    const int exp_weight = std::ilogb(static_cast<double>(total_weight)) + 1;
    return FixedPoint(62 - exp_max - exp_weight);
  }

  int exponent() const { return exponent_; }
  double scale() const { return scale_; }  // 2^exponent

  // x -> round-half-even(x * 2^exponent). The product is exact in double (a float
  // times a power of two well inside double's range) and below 2^62 in magnitude by
  // the choice of exponent; llrint rounds in the default mode and compiles to one
  // instruction on x86-64 (nearbyint would be a libm call).
  int64_t quantize(float x) const { return std::llrint(static_cast<double>(x) * scale_); }

  // A fixed-point sum divided by a count, back in float (the cluster mean).
  float mean(int64_t sum, uint64_t count) const {
    return static_cast<float>(static_cast<double>(sum) / scale_ / static_cast<double>(count));
  }

 private:
  int exponent_;
  double scale_;  // 2^exponent_, cached: quantize() runs once per coordinate
};

}  // namespace pgkm
