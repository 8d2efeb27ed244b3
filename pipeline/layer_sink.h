// Rank 0's side of a run: every finished layer, wherever it was computed, goes into the
// archive as it arrives (never more than the one in hand is held), is checkpointed for
// --resume unless it came from a checkpoint, fills its report row and is announced to
// the observer. Also the resume decision: which checkpoint a layer may reuse.
#pragma once

#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "engine/layer_record.h"
#include "io/archive.h"
#include "io/report.h"
#include "pipeline/observer.h"
#include "pipeline/plan.h"

namespace pgkm {

class LayerSink {
 public:
  // `rows`: the plan's report rows, one per layer (filled in as layers arrive).
  LayerSink(std::vector<io::ReportLayer>& rows, io::ArchiveWriter& writer,
            io::LayerCheckpoints& checkpoints, QuantizeObserver& observer);

  // Writes `layer` (a layer of the plan, not seen before) and records it. Its codebook
  // and codes are dropped once written.
  void accept(LayerRecord layer, bool resumed);
  // Layers accepted so far.
  size_t finished() const { return finished_; }

 private:
  std::vector<io::ReportLayer>& rows_;
  io::ArchiveWriter& writer_;
  io::LayerCheckpoints& checkpoints_;
  QuantizeObserver& observer_;
  std::map<std::string, size_t> index_;  // tensor name -> row
  size_t finished_ = 0;
};

// The checkpoint of `layer` that a resumed run may reuse instead of clustering it again:
// one whose source digest and settings digest both match, or nullopt. A checkpoint that
// exists but cannot be read (incomplete, corrupt) is not reused: `warning`, when given,
// then gets a message naming the layer and the reason.
std::optional<LayerRecord> reusable_checkpoint(const io::LayerCheckpoints& checkpoints,
                                               const PlannedLayer& layer,
                                               const std::string& source_digest,
                                               std::string* warning = nullptr);

}  // namespace pgkm
