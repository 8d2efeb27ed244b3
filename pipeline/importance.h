// Importance weighting of a run (pgkm quantize --importance; docs/CONFIG.md, "Importance"):
// the calibration statistics of launch/calibrate.py turned into per-column scales.
#pragma once

#include <span>
#include <string>
#include <vector>

#include "pipeline/plan.h"

namespace pgkm {

// Reads `params.importance` (when set) and fills `column_scales` and the settings digest
// of every planned Linear: s_c = max(h_c / mean(h), kImportanceFloor)^(alpha / 2) with h
// the file's tensor named like the layer's weight ([in_features] float32 >= 0) and alpha
// params.importance_exponent. Embedding and Conv2d layers stay plain (an embedding's
// token counts are checked, not used). Throws InputError naming the file, the tensor and
// the value for a tensor of the wrong dtype or length, a negative, NaN or infinite value,
// an all-zero tensor, and for every planned Linear the file does not name unless
// params.importance_missing_plain (then those stay plain).
void apply_importance(const QuantizeParams& params, ModelPlan& plan);

// The relative importance below which a column counts as this important: keeps every
// scale > 0, so dividing it out on reconstruction is defined.
inline constexpr double kImportanceFloor = 1e-6;

// The scales of one layer from its statistic h (checked), as apply_importance makes them.
std::vector<float> importance_scales(std::span<const float> h, double exponent);

}  // namespace pgkm
