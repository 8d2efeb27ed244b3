#include "engine/dtype.h"

#include <bit>
#include <cmath>

#include "core/enum_names.h"

namespace pgkm {

size_t dtype_size(DType t) {
  return t == DType::F32 ? 4 : 2;
}

namespace {
constexpr EnumNames<DType, 3> kDTypeNames{
    {{{DType::F32, "F32"}, {DType::F16, "F16"}, {DType::BF16, "BF16"}}}};
}  // namespace

const char* dtype_name(DType t) {
  return kDTypeNames.name(t);
}

std::optional<DType> parse_dtype(std::string_view name) {
  return kDTypeNames.parse(name);
}

float f16_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1Fu;
  const uint32_t mant = h & 0x3FFu;
  if (exp == 0x1F) return std::bit_cast<float>(sign | 0x7F800000u | (mant << 13));  // inf / NaN
  if (exp == 0) {
    // Zero or subnormal: mant * 2^-24, exact in float.
    const float mag = std::ldexp(static_cast<float>(mant), -24);
    return sign ? -mag : mag;
  }
  return std::bit_cast<float>(sign | ((exp + 112u) << 23) | (mant << 13));
}

float bf16_to_float(uint16_t h) {
  return std::bit_cast<float>(static_cast<uint32_t>(h) << 16);
}

uint16_t float_to_bf16(float f) {
  uint32_t bits = std::bit_cast<uint32_t>(f);
  if (std::isnan(f)) return static_cast<uint16_t>((bits >> 16) | 0x40u);  // keep it a quiet NaN
  bits += 0x7FFFu + ((bits >> 16) & 1u);                                  // round to nearest even
  return static_cast<uint16_t>(bits >> 16);
}

uint16_t float_to_f16(float f) {
  const uint32_t bits = std::bit_cast<uint32_t>(f);
  const uint16_t sign = static_cast<uint16_t>((bits >> 16) & 0x8000u);
  const float a = std::fabs(f);
  if (std::isnan(f)) return sign | 0x7E00u;
  if (a >= 65520.f) return sign | 0x7C00u;  // rounds to infinity
  if (a < std::ldexp(1.f, -14)) {
    // Subnormal half: a / 2^-24 rounded to nearest even integer, exact steps in float.
    return sign | static_cast<uint16_t>(std::nearbyint(std::ldexp(a, 24)));
  }
  const uint32_t abits = std::bit_cast<uint32_t>(a);
  uint32_t exp = (abits >> 23) - 112u;
  uint32_t mant = abits & 0x7FFFFFu;
  const uint32_t rest = mant & 0x1FFFu;
  mant >>= 13;
  if (rest > 0x1000u || (rest == 0x1000u && (mant & 1u))) {
    if (++mant == 0x400u) {
      mant = 0;
      ++exp;
    }
  }
  return sign | static_cast<uint16_t>((exp << 10) | mant);
}

}  // namespace pgkm
