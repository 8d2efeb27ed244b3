#include "pipeline/importance.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/errors.h"
#include "core/text.h"
#include "io/safetensors.h"

namespace pgkm {
namespace {

// The file's tensor `name` as float32 values, checked: F32, shape [length], finite, >= 0.
std::vector<float> read_statistic(const io::SafetensorsFile& file, const io::TensorInfo& t,
                                  int64_t length, const char* meaning) {
  const std::string& path = file.path();
  PGKM_EXPECTS(t.dtype == "F32", path, "importance tensor '", t.name, "' has dtype ", t.dtype,
               ", expected F32");
  PGKM_EXPECTS(t.shape.size() == 1 && t.shape[0] == length, path, "importance tensor '", t.name,
               "' has shape ", shape_text(t.shape), ", expected [", length, "] (", meaning, ")");
  const auto bytes = file.bytes(t);
  std::vector<float> h(static_cast<size_t>(length));
  PGKM_ASSERT(bytes.size() == h.size() * sizeof(float));
  std::memcpy(h.data(), bytes.data(), bytes.size());
  for (size_t c = 0; c < h.size(); ++c) {
    PGKM_EXPECTS(std::isfinite(h[c]) && h[c] >= 0, path, "importance tensor '", t.name, "' value ",
                 c, " is ", h[c], ", expected a finite value >= 0");
  }
  return h;
}

}  // namespace

std::vector<float> importance_scales(std::span<const float> h, double exponent) {
  double sum = 0;  // exact for equal values: n * h needs at most 24 + log2(n) bits
  for (float v : h)
    sum += v;
  const double mean = sum / static_cast<double>(h.size());
  std::vector<float> s(h.size());
  for (size_t c = 0; c < h.size(); ++c) {
    const double rel = std::max(static_cast<double>(h[c]) / mean, kImportanceFloor);
    s[c] = static_cast<float>(std::pow(rel, exponent / 2));
  }
  return s;
}

std::vector<uint32_t> token_row_weights(std::span<const float> f, double beta,
                                        const std::string& path, const std::string& tensor) {
  double sum = 0;
  for (float v : f)
    sum += v;
  PGKM_EXPECTS(sum > 0, path, "importance tensor '", tensor, "' is all zero: no token was counted");
  const double rows = static_cast<double>(f.size());
  std::vector<uint32_t> w(f.size());
  for (size_t r = 0; r < f.size(); ++r) {
    // In double, in row order: the same weights on every rank. extra <= beta * rows.
    const double extra = std::round(beta * rows * (static_cast<double>(f[r]) / sum));
    PGKM_EXPECTS(extra < 4294967295.0, path, "importance tensor '", tensor, "' row ", r,
                 " would weigh ", extra + 1, ", more than 2^32 - 1");
    w[r] = 1 + static_cast<uint32_t>(extra);
  }
  return w;
}

void apply_importance(const QuantizeParams& params, ModelPlan& plan) {
  if (params.importance.empty()) return;
  const io::SafetensorsFile file = io::SafetensorsFile::open(params.importance);
  std::vector<std::string> missing;
  for (size_t i = 0; i < plan.layers.size(); ++i) {
    PlannedLayer& l = plan.layers[i];
    const io::TensorInfo* t = file.find(l.plan.tensor);
    const bool linear = l.plan.type == ModuleType::kLinear && l.info->shape.size() == 2;
    const bool embedding = l.plan.type == ModuleType::kEmbedding;
    if (embedding && t != nullptr) {
      const std::vector<float> f =
          read_statistic(file, *t, l.info->shape[0], "token counts, one per embedding row");
      if (params.importance_token_weight == 0) continue;
      l.row_weights = token_row_weights(f, params.importance_token_weight, file.path(), t->name);
      l.token_weight = params.importance_token_weight;
      l.settings_digest = planned_digest(l);
      plan.rows[i].record.settings_digest = l.settings_digest;
      continue;
    }
    if (embedding && params.importance_token_weight > 0) missing.push_back(l.plan.tensor);
    if (!linear) continue;
    if (t == nullptr) {
      missing.push_back(l.plan.tensor);
      continue;
    }
    const std::vector<float> h =
        read_statistic(file, *t, l.info->shape[1], "mean x^2, one per input feature");
    bool any = false;
    for (float v : h)
      any = any || v > 0;
    PGKM_EXPECTS(any, file.path(), "importance tensor '", t->name,
                 "' is all zero: no column would count");
    l.column_scales = importance_scales(h, params.importance_exponent);
    l.importance_exponent = params.importance_exponent;
    l.settings_digest = planned_digest(l);
    plan.rows[i].record.settings_digest = l.settings_digest;
    plan.rows[i].record.column_scales = l.column_scales;
    plan.rows[i].sizes += column_scale_sizes(l.column_scales.size());
  }
  if (missing.empty() || params.importance_missing_plain) return;
  std::string list;
  for (const std::string& m : missing)
    list += str_cat(list.empty() ? "" : ", ", m);
  throw InputError(params.importance,
                   str_cat("no importance for ", missing.size(), " quantized layer",
                           missing.size() == 1 ? "" : "s", " of the config: ", list,
                           " (--importance-missing plain quantizes them unweighted)"));
}

}  // namespace pgkm
