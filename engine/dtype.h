// Element types of source weights and their conversion to float.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace pgkm {

// Floating-point types pgkm quantizes. Other safetensors dtypes are kept as they are.
enum class DType { F32, F16, BF16 };

size_t dtype_size(DType t);
const char* dtype_name(DType t);  // "F32", "F16", "BF16" (safetensors spelling)
// Parses a name dtype_name gives; nullopt for anything else.
std::optional<DType> parse_dtype(std::string_view name);

// Exact widening conversions (every F16 and BF16 value is representable in float).
float f16_to_float(uint16_t h);
float bf16_to_float(uint16_t h);
// Round-to-nearest-even narrowing; overflow gives +-inf, NaN stays NaN.
uint16_t float_to_f16(float f);
uint16_t float_to_bf16(float f);

}  // namespace pgkm
