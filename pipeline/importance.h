// Importance weighting of a run (pgkm quantize --importance; docs/CONFIG.md, "Importance"):
// the calibration statistics of launch/calibrate.py turned into per-column scales.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "pipeline/plan.h"

namespace pgkm {

// Reads `params.importance` (when set) and fills `column_scales` and the settings digest
// of every planned Linear: s_c = max(h_c / mean(h), kImportanceFloor)^(alpha / 2) with h
// the file's tensor named like the layer's weight ([in_features] float32 >= 0) and alpha
// params.importance_exponent. An embedding's rows get token_row_weights from the file's
// token counts when params.importance_token_weight > 0 (else its counts are checked, not
// used); Conv2d layers stay plain. Throws InputError naming the file, the tensor and the
// value for a tensor of the wrong dtype or length, a negative, NaN or infinite value, an
// all-zero tensor, and for every planned Linear (and embedding, when weighted) the file
// does not name unless params.importance_missing_plain (then those stay plain).
void apply_importance(const QuantizeParams& params, ModelPlan& plan);

// The relative importance below which a column counts as this important: keeps every
// scale > 0, so dividing it out on reconstruction is defined.
inline constexpr double kImportanceFloor = 1e-6;

// The scales of one layer from its statistic h (checked), as apply_importance makes them.
std::vector<float> importance_scales(std::span<const float> h, double exponent);

// An embedding's row weights from its token counts f (checked, any scale: frequencies or
// counts): w_r = 1 + round(beta * rows * f_r / sum(f)), so every row counts at least once
// (tokens the calibration text never used still matter on other text) and the calibration
// tokens together weigh beta times all rows. `path` and `tensor` name the file in errors.
std::vector<uint32_t> token_row_weights(std::span<const float> f, double beta,
                                        const std::string& path, const std::string& tensor);

}  // namespace pgkm
