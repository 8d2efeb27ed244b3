#include "pipeline/plan.h"

#include "core/errors.h"
#include "engine/size_plan.h"

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

io::ReportLayer planned_row(const PlannedLayer& l) {
  io::ReportLayer row;
  row.record.name = l.plan.tensor;
  row.record.shape = l.info->shape;
  row.record.module_type = l.plan.type;
  row.record.settings = l.settings;
  row.record.settings_digest = l.settings_digest;
  if (const auto dtype = l.info->quantizable()) row.record.source_dtype = *dtype;
  const int64_t numel = l.info->numel();
  row.original_mib = original_bytes(numel) / kBytesPerMiB;
  row.compressed_mib =
      quantized_bytes(numel, l.settings.block_size, l.settings.kmeans.n_centroids) / kBytesPerMiB;
  return row;
}

// Whole-model sizes: quantized layers by SizeTracker, every other parameter at 4 bytes.
io::ReportTotals size_totals(const io::SafetensorsModel& model,
                             const std::vector<io::ReportLayer>& rows) {
  io::ReportTotals t;
  for (const io::TensorInfo& info : model.tensors()) {
    if (counts_as_parameter(info.dtype)) {
      t.original_mib += original_bytes(info.numel()) / kBytesPerMiB;
      t.compressed_mib += original_bytes(info.numel()) / kBytesPerMiB;
    }
  }
  for (const io::ReportLayer& r : rows)
    t.compressed_mib += r.compressed_mib - r.original_mib;
  return t;
}

}  // namespace

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
  out.totals = size_totals(model, out.rows);
  return out;
}

WeightView weight_view(const io::SafetensorsModel& model, const io::TensorInfo& tensor) {
  const std::optional<DType> dtype = tensor.quantizable();
  PGKM_ASSERT(dtype.has_value(), "tensor ", tensor.name, " is not F32, F16 or BF16");
  return {tensor.name, *dtype, tensor.shape, model.bytes(tensor)};
}

}  // namespace pgkm
