// The JSON report of a quantization run (`pgkm quantize --report`).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "engine/layer_record.h"

namespace pgkm::io {

struct ReportLayer {
  // The layer's kReport fields (engine/layer_record.h); its codebook and codes are not
  // reported and may be left empty.
  LayerRecord record;
  bool clustered = false;       // false in a --dry-run report: every statistic is null
  std::optional<bool> resumed;  // true when reused from a checkpoint by --resume
  double original_mib = 0;      // SizeTracker accounting (engine/size_plan.h)
  double compressed_mib = 0;
};

struct ReportTotals {
  double original_mib = 0;  // the whole model, kept tensors included
  double compressed_mib = 0;
  std::optional<double> seconds;  // unset in a --dry-run report
  double ratio() const { return compressed_mib > 0 ? original_mib / compressed_mib : 0; }
};

// Writes {"model", "config", "dry_run", "layers": [...], "totals": {...}} to `path`
// atomically (core/atomic_file.h).
void write_report(const std::string& path, const std::string& model, const std::string& config,
                  bool dry_run, const std::vector<ReportLayer>& layers, const ReportTotals& totals);

}  // namespace pgkm::io
