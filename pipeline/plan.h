// Planning a run: which layers are quantized with which settings, what each costs, how
// big the result will be; decided before any tensor data is read.
#pragma once

#include <string>
#include <vector>

#include "engine/layer_record.h"
#include "io/config.h"
#include "io/report.h"
#include "io/safetensors.h"
#include "pipeline/params.h"

namespace pgkm {

// One layer to quantize, with everything decided before any clustering starts.
struct PlannedLayer {
  io::LayerPlan plan;                    // the config's decision for the tensor
  const io::TensorInfo* info = nullptr;  // the tensor in the model
  LayerSettings settings;                // block size, K, algorithm, ... for this layer
  std::string settings_digest;           // settings_digest(settings)
  double cost = 0;                       // engine/size_plan.h clustering_cost
};

struct ModelPlan {
  std::vector<PlannedLayer> layers;   // sorted by tensor name
  std::vector<std::string> keep;      // every other tensor, sorted by name
  std::vector<std::string> warnings;  // the config's (patterns that match nothing, ...)
  std::vector<io::ReportLayer> rows;  // one per layer, sizes filled in, not yet clustered
  io::ReportTotals totals;            // whole-model sizes (SizeTracker accounting)

  double total_cost() const;
  std::vector<double> costs() const;  // [layers]
};

// Applies `config` to `model` with the run's defaults. Reads headers only. Throws
// InputError for a layer that cannot be quantized as asked (io::plan_layers).
ModelPlan plan_model(const QuantizeParams& params, const io::SafetensorsModel& model,
                     const io::QuantConfig& config);

// The engine's view of a planned tensor's bytes.
WeightView weight_view(const io::SafetensorsModel& model, const io::TensorInfo& tensor);

}  // namespace pgkm
