// `pgkm quantize`: pipeline/quantize_model.h plus what a person at a terminal sees: one
// line per finished layer, a live bar on a TTY, the dry-run plan and the totals.
#include <cstdio>
#include <memory>

#include "core/text.h"
#include "launch/commands.h"
#include "launch/format.h"
#include "launch/progress.h"
#include "pipeline/plan.h"
#include "pipeline/quantize_model.h"

namespace pgkm {
namespace {

// Turns the run's events into terminal output.
class TerminalObserver final : public QuantizeObserver {
 public:
  void on_warning(const std::string& message) override {
    std::fprintf(stderr, "pgkm: warning: %s\n", message.c_str());
  }
  void on_setup(const std::string& line) override {
    std::fprintf(stderr, "pgkm: %s\n", line.c_str());
  }
  void on_start(const ModelPlan& plan, bool whole_job) override {
    progress_ = std::make_unique<Progress>(plan.total_cost(), whole_job);
  }
  void on_layer_start(const PlannedLayer& layer) override {
    progress_->begin_layer(layer.plan.tensor, layer.cost, layer.settings.kmeans.iterations);
  }
  void on_iteration(const PlannedLayer&, const IterationStats& stats) override {
    progress_->iteration_done(stats.iteration + 1);
  }
  void on_layer_written(size_t index, size_t total, const io::ReportLayer& row) override {
    progress_->layer_line(layer_line(index, total, row));
  }
  void clear() {
    if (progress_) progress_->clear();
  }

 private:
  std::unique_ptr<Progress> progress_;
};

void print_dry_run(const RunSummary& s) {
  const size_t n = s.rows.size();
  for (size_t i = 0; i < n; ++i) {
    const LayerRecord& l = s.rows[i].record;
    std::printf("[%*zu/%zu] %s %s %s b=%d K=%lld %s: %s\n", digits(n), i + 1, n, l.name.c_str(),
                shape_text(l.shape).c_str(), dtype_name(l.source_dtype), l.settings.block_size,
                static_cast<long long>(l.settings.kmeans.n_centroids),
                algorithm_name(l.settings.kmeans.algorithm),
                sizes_text(s.rows[i].sizes, 3).c_str());
  }
  std::printf("dry run: %zu layers to quantize; %s\n", n, totals_text(s.totals).c_str());
}

void print_totals(const RunSummary& s, const std::string& out) {
  std::printf(
      "total: %zu layers quantized, %zu tensors kept; %s; %s s on %d rank%s (%s); archive %s\n",
      s.rows.size(), s.kept, totals_text(s.totals).c_str(),
      fixed(s.totals.seconds.value_or(0), 1).c_str(), s.ranks, s.ranks == 1 ? "" : "s",
      s.backend.c_str(), out.c_str());
}

}  // namespace

void run_quantize(const QuantizeParams& params, World& world) {
  TerminalObserver observer;
  RunSummary summary;
  try {
    summary = quantize_model(params, world, observer);
  } catch (...) {
    observer.clear();  // the error line must not land on the bar
    throw;
  }
  if (world.rank() != 0) return;
  if (summary.dry_run) {
    print_dry_run(summary);
    return;
  }
  observer.clear();
  print_totals(summary, params.out);
}

}  // namespace pgkm
