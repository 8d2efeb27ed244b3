// Helpers shared by the config tests (test_config.cpp, test_config_shipped.cpp).
#pragma once

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "io/config.h"

namespace pgkm::io {

using Tensors = std::vector<TensorDesc>;

inline TensorDesc f32(const std::string& name, std::vector<int64_t> shape) {
  return {name, "F32", std::move(shape)};
}

// The plan's entry for `tensor`, or nullptr when it is not quantized.
inline const LayerPlan* find_layer(const Plan& plan, const std::string& tensor) {
  const auto it = std::find_if(plan.quantize.begin(), plan.quantize.end(),
                               [&](const LayerPlan& l) { return l.tensor == tensor; });
  return it == plan.quantize.end() ? nullptr : &*it;
}

inline bool kept(const Plan& plan, const std::string& tensor) {
  return std::find(plan.keep.begin(), plan.keep.end(), tensor) != plan.keep.end();
}

}  // namespace pgkm::io
