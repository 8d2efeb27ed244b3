// Small text helpers shared by messages and command output.
#pragma once

#include <cstdint>
#include <cstdio>
#include <span>
#include <string>

namespace pgkm {

// "[384, 1536]"; "[]" for a scalar.
template <typename Int>
std::string shape_text(std::span<const Int> shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i > 0) s += ", ";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}
template <typename Container>
std::string shape_text(const Container& shape) {
  return shape_text(std::span(shape.data(), shape.size()));
}

// `v` with exactly `decimals` digits after the point: fixed(2.3456, 2) == "2.35".
inline std::string fixed(double v, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

}  // namespace pgkm
