// What a run tells its caller as it goes: the CLI prints lines and a progress bar from
// these events; tests and benchmarks can record them. Every method has an empty default.
#pragma once

#include <cstddef>
#include <string>

#include "engine/layer_stats.h"
#include "io/report.h"

namespace pgkm {

struct ModelPlan;
struct PlannedLayer;

class QuantizeObserver {
 public:
  virtual ~QuantizeObserver() = default;
  // Rank 0: a config warning (a pattern that matches nothing, ...).
  virtual void on_warning(const std::string& /*message*/) {}
  // Rank 0: one line on how the run is set up (which communicator shared layers use).
  virtual void on_setup(const std::string& /*line*/) {}
  // Every rank, once clustering is about to start (not in a dry run). `whole_job`: this
  // rank runs every layer (a one-rank job), so its progress is the job's.
  virtual void on_start(const ModelPlan& /*plan*/, bool /*whole_job*/) {}
  // This rank starts clustering `layer`, and finished iteration `stats.iteration` of it.
  virtual void on_layer_start(const PlannedLayer& /*layer*/) {}
  virtual void on_iteration(const PlannedLayer& /*layer*/, const IterationStats& /*stats*/) {}
  // Rank 0: the `index`-th finished layer (0-based) of `total` is in the archive.
  virtual void on_layer_written(size_t /*index*/, size_t /*total*/,
                                const io::ReportLayer& /*row*/) {}
};

}  // namespace pgkm
