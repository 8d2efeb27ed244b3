// The JSON report of a quantization run (`pgkm quantize --report`).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "engine/layer_record.h"
#include "engine/size_plan.h"

namespace pgkm::io {

struct ReportLayer {
  // The layer's kReport fields (engine/layer_record.h); its codebook and codes are not
  // reported and may be left empty.
  LayerRecord record;
  bool clustered = false;       // false in a --dry-run report: every statistic is null
  std::optional<bool> resumed;  // true when reused from a checkpoint by --resume
  SizeFigures sizes;            // SizeTracker and real bytes (engine/size_plan.h)
};

struct ReportTotals {
  // The whole model, kept tensors included; archive_bytes is the plan (data only).
  SizeFigures sizes;
  // The archive file's size on disk once written (unset in a dry run): the plan plus
  // HDF5's own overhead.
  std::optional<uint64_t> archive_file_bytes;
  std::optional<double> seconds;  // unset in a --dry-run report
  // SizeTracker's ratio, as the paper reports it.
  double ratio() const { return sizes.tracker_ratio(); }
  // Source bytes over archive bytes: on disk once written, else as planned.
  double ratio_on_disk() const {
    const auto archive = static_cast<double>(archive_file_bytes.value_or(sizes.archive_bytes));
    return archive > 0 ? static_cast<double>(sizes.source_bytes) / archive : 0;
  }
};

// Writes {"model", "config", "dry_run", "layers": [...], "totals": {...}} to `path`
// atomically (core/atomic_file.h). Every size field (engine/size_plan.h
// for_each_size_field) is a key of each layer and of the totals; the totals add "ratio"
// (SizeTracker), "archive_file_bytes" and "ratio_on_disk".
void write_report(const std::string& path, const std::string& model, const std::string& config,
                  bool dry_run, const std::vector<ReportLayer>& layers, const ReportTotals& totals);

}  // namespace pgkm::io
