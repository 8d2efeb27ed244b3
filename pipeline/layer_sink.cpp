#include "pipeline/layer_sink.h"

#include <chrono>
#include <utility>

#include "core/errors.h"

namespace pgkm {

LayerSink::LayerSink(std::vector<io::ReportLayer>& rows, io::ArchiveWriter& writer,
                     io::LayerCheckpoints& checkpoints, QuantizeObserver& observer)
    : rows_(rows), writer_(writer), checkpoints_(checkpoints), observer_(observer) {
  for (size_t i = 0; i < rows.size(); ++i)
    index_[rows[i].record.name] = i;
}

void LayerSink::accept(LayerRecord layer, bool resumed) {
  const auto it = index_.find(layer.name);
  PGKM_ASSERT(it != index_.end(), "layer ", layer.name, " is not in the plan");
  io::ReportLayer& row = rows_[it->second];
  PGKM_ASSERT(!row.clustered, "layer ", layer.name, " arrived twice");
  const auto start = std::chrono::steady_clock::now();
  writer_.write_layer(layer);
  if (!resumed) checkpoints_.save(layer);
  if (!resumed) {
    layer.stats.seconds_write =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }
  // The report keeps the record's fields, not its data.
  layer.centroids = {};
  layer.codes = {};
  layer.counts = {};
  row.record = std::move(layer);
  row.clustered = true;
  row.resumed = resumed;
  observer_.on_layer_written(finished_++, rows_.size(), row);
}

std::optional<LayerRecord> reusable_checkpoint(const io::LayerCheckpoints& checkpoints,
                                               const PlannedLayer& layer,
                                               const std::string& source_digest,
                                               std::string* warning) {
  std::string why;
  auto found =
      checkpoints.load_matching(layer.plan.tensor, source_digest, layer.settings_digest, &why);
  if (!why.empty() && warning != nullptr) {
    *warning = str_cat("ignoring the checkpoint of layer '", layer.plan.tensor,
                       "' (it will be redone): ", why);
  }
  return found;
}

}  // namespace pgkm
