// Planning a run: which layers are quantized with which settings, what each costs, how
// big the result will be; decided before any tensor data is read.
#pragma once

#include <string>
#include <vector>

#include "engine/layer_record.h"
#include "io/config.h"
#include "io/model_source.h"
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
  // Importance weighting (pipeline/importance.h): empty, or one scale per column.
  std::vector<float> column_scales;
  double importance_exponent = 0;  // the alpha the scales were made with
  // Token-frequency weighting of an embedding: empty, or one weight >= 1 per row.
  std::vector<uint32_t> row_weights;
  double token_weight = 0;  // the beta the row weights were made with
};

// settings_digest(l.settings), extended by the column scales and exponent, or the row
// weights and beta, of a weighted layer, so --resume reuses a checkpoint only when its
// weighting is the same too.
std::string planned_digest(const PlannedLayer& l);

struct ModelPlan {
  std::vector<PlannedLayer> layers;   // sorted by tensor name
  std::vector<std::string> keep;      // every other tensor, sorted by name
  std::vector<std::string> warnings;  // the config's (patterns that match nothing, ...)
  std::vector<io::ReportLayer> rows;  // one per layer, sizes filled in, not yet clustered
  io::ReportTotals totals;            // whole-model sizes (SizeTracker and real bytes)
  io::SourceFileList source_files;    // the non-weight files the archive will record

  double total_cost() const;
  std::vector<double> costs() const;  // [layers]
};

// Applies `config` to `model` with the run's defaults, and params.importance's column
// scales (pipeline/importance.h). Reads headers (and the importance file) only. Throws
// InputError for a layer that cannot be quantized as asked (io::plan_layers).
ModelPlan plan_model(const QuantizeParams& params, const io::SafetensorsModel& model,
                     const io::QuantConfig& config);

// Reads the values of every planned layer that asks for float16 centroids and switches
// the ones whose weights float16 cannot hold (a value that rounds to infinity) to float32
// centroids, updating their settings, digest and report row. Returns one warning per
// switched layer, naming it and its largest value. Every rank calls it on the whole plan,
// so all ranks agree (docs/CONFIG.md, "Centroid dtype").
std::vector<std::string> fit_centroid_dtypes(ModelPlan& plan, const io::SafetensorsModel& model);

// Throws InputError naming both tensors when two tensor names would be stored under the
// same archive name (HDF5 stores names as C strings: everything after a NUL byte is lost),
// and for a name holding a NUL byte (its stored name would not read back as itself).
void check_storable_names(const io::SafetensorsModel& model);

// The engine's view of a planned tensor's bytes.
WeightView weight_view(const io::SafetensorsModel& model, const io::TensorInfo& tensor);

}  // namespace pgkm
