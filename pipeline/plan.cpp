#include "pipeline/plan.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <set>

#include "core/digest.h"
#include "core/errors.h"
#include "engine/dtype.h"
#include "engine/layout.h"
#include "engine/size_plan.h"
#include "pipeline/importance.h"

namespace pgkm {
namespace {

std::vector<io::TensorDesc> describe(const io::SafetensorsModel& model) {
  std::vector<io::TensorDesc> out;
  for (const io::TensorInfo& t : model.tensors())
    out.push_back({t.name, t.dtype, t.shape});
  return out;
}

LayerSettings layer_settings(const LayerSettings& defaults, const io::LayerPlan& lp) {
  LayerSettings s = defaults;
  s.block_size = lp.block_size;
  s.kmeans.n_centroids = lp.n_centroids;
  s.kmeans.algorithm = lp.algorithm.value_or(defaults.kmeans.algorithm);
  s.kmeans.iterations = lp.iterations.value_or(defaults.kmeans.iterations);
  return s;
}

size_t centroid_bytes(CentroidDtype t) {
  return t == CentroidDtype::kF16 ? 2 : 4;
}

io::ReportLayer planned_row(const PlannedLayer& l) {
  io::ReportLayer row;
  row.record.name = l.plan.tensor;
  row.record.shape = l.info->shape;
  row.record.module_type = l.plan.type;
  row.record.settings = l.settings;
  row.record.settings_digest = l.settings_digest;
  row.record.column_scales = l.column_scales;
  if (const auto dtype = l.info->quantizable()) row.record.source_dtype = *dtype;
  row.sizes = quantized_layer_sizes(l.info->numel(), dtype_size(row.record.source_dtype),
                                    l.settings.block_size, l.settings.kmeans.n_centroids,
                                    centroid_bytes(l.settings.centroid_dtype));
  row.sizes += column_scale_sizes(l.column_scales.size());
  return row;
}

// Whole-model sizes: the quantized layers' rows, every other tensor as it is, and the
// recorded non-weight files (in the source and in the archive alike).
io::ReportTotals size_totals(const io::SafetensorsModel& model,
                             const std::vector<io::ReportLayer>& rows,
                             const io::SourceFileList& files) {
  io::ReportTotals t;
  std::set<std::string> quantized;
  for (const io::ReportLayer& r : rows) {
    t.sizes += r.sizes;
    quantized.insert(r.record.name);
  }
  for (const io::TensorInfo& info : model.tensors()) {
    if (quantized.count(info.name)) continue;
    t.sizes += kept_tensor_sizes(info.numel(), info.data_end - info.data_begin,
                                 counts_as_parameter(info.dtype));
  }
  t.sizes.source_bytes += files.total_bytes();
  t.sizes.archive_bytes += files.total_bytes();
  return t;
}

}  // namespace

std::string planned_digest(const PlannedLayer& l) {
  const std::string plain = settings_digest(l.settings);
  if (l.column_scales.empty() && l.row_weights.empty()) return plain;
  std::string text = plain;
  if (!l.column_scales.empty()) {
    text += str_cat("|importance=", l.importance_exponent, "|");
    const auto* first = reinterpret_cast<const char*>(l.column_scales.data());
    text.append(first, l.column_scales.size() * sizeof(float));
  }
  if (!l.row_weights.empty()) {
    text += str_cat("|token_weight=", l.token_weight, "|");
    const auto* first = reinterpret_cast<const char*>(l.row_weights.data());
    text.append(first, l.row_weights.size() * sizeof(uint32_t));
  }
  return digest_hex(digest64(std::as_bytes(std::span(text.data(), text.size()))));
}

double ModelPlan::total_cost() const {
  double total = 0;
  for (const PlannedLayer& l : layers)
    total += l.cost;
  return total;
}

std::vector<double> ModelPlan::costs() const {
  std::vector<double> out;
  for (const PlannedLayer& l : layers)
    out.push_back(l.cost);
  return out;
}

ModelPlan plan_model(const QuantizeParams& params, const io::SafetensorsModel& model,
                     const io::QuantConfig& config) {
  io::Plan plan = io::plan_layers(config, describe(model), params.strict);
  ModelPlan out;
  out.keep = std::move(plan.keep);
  out.warnings = std::move(plan.warnings);
  for (const io::LayerPlan& lp : plan.quantize) {
    PlannedLayer l;
    l.plan = lp;
    l.info = model.find(lp.tensor);
    PGKM_ASSERT(l.info != nullptr, "planned tensor missing: ", lp.tensor);
    l.settings = layer_settings(params.defaults, lp);
    l.settings_digest = settings_digest(l.settings);
    l.cost = clustering_cost(l.info->numel() / lp.block_size, lp.n_centroids, lp.block_size,
                             l.settings.kmeans.iterations);
    out.rows.push_back(planned_row(l));
    out.layers.push_back(std::move(l));
  }
  apply_importance(params, out);  // --importance: column scales, digests, sizes
  out.source_files = io::list_source_files(params.model);
  for (const std::string& skipped : out.source_files.skipped) {
    out.warnings.push_back(str_cat(params.model, ": not recorded in the archive: ", skipped));
  }
  out.totals = size_totals(model, out.rows, out.source_files);
  return out;
}

std::vector<std::string> fit_centroid_dtypes(ModelPlan& plan, const io::SafetensorsModel& model) {
  std::vector<std::string> warnings;
  for (size_t i = 0; i < plan.layers.size(); ++i) {
    PlannedLayer& l = plan.layers[i];
    if (l.settings.centroid_dtype != CentroidDtype::kF16) continue;
    if (l.info->quantizable() == DType::F16) continue;  // its values are float16 already
    // A weighted layer's centroids hold scaled weights: bound them by the largest scale.
    float max_scale = 1;
    for (float s : l.column_scales)
      max_scale = std::max(max_scale, s);
    const float max_abs = max_abs_value(weight_view(model, *l.info)) * max_scale;
    if (std::isfinite(f16_to_float(float_to_f16(max_abs)))) continue;
    l.settings.centroid_dtype = CentroidDtype::kF32;
    l.settings_digest = planned_digest(l);
    plan.rows[i] = planned_row(l);
    warnings.push_back(str_cat("layer '", l.plan.tensor, "': its largest |value| ", max_abs,
                               " exceeds float16's range (65504), so its centroids are stored "
                               "as float32 instead of the float16 asked for"));
  }
  plan.totals = size_totals(model, plan.rows, plan.source_files);
  return warnings;
}

namespace {

// A tensor name as printed: bytes below 0x20 as \xNN, so a NUL byte shows.
std::string printable(const std::string& name) {
  std::string out;
  for (unsigned char c : name) {
    if (c < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

}  // namespace

void check_storable_names(const io::SafetensorsModel& model) {
  std::map<std::string, std::string> stored;  // the name as the archive keeps it -> name
  for (const io::TensorInfo& t : model.tensors()) {
    const std::string key = t.name.substr(0, t.name.find('\0'));
    const auto [it, fresh] = stored.emplace(key, t.name);
    PGKM_EXPECTS(fresh, model.shards().front().path(), "tensors '", printable(it->second),
                 "' and '", printable(t.name),
                 "' would be stored under the same name in the archive (HDF5 keeps a name up "
                 "to its first NUL byte); rename one of them");
  }
  for (const io::TensorInfo& t : model.tensors()) {
    PGKM_EXPECTS(t.name.find('\0') == std::string::npos, model.shards().front().path(), "tensor '",
                 printable(t.name),
                 "' has a NUL byte in its name, which the archive (HDF5) cannot store");
  }
}

WeightView weight_view(const io::SafetensorsModel& model, const io::TensorInfo& tensor) {
  const std::optional<DType> dtype = tensor.quantizable();
  PGKM_ASSERT(dtype.has_value(), "tensor ", tensor.name, " is not F32, F16 or BF16");
  return {tensor.name, *dtype, tensor.shape, model.bytes(tensor)};
}

}  // namespace pgkm
