// The JSON report of a quantization run (`pgkm quantize --report`).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace pgkm::io {

struct ReportLayer {
  std::string name;
  std::vector<int64_t> shape;
  int block_size = 0;
  int64_t n_centroids = 0;
  std::string algorithm;
  // Clustering results; all unset (JSON null) in a --dry-run report.
  std::optional<int64_t> empty_clusters;
  std::optional<double> objective;
  std::optional<int64_t> iterations;
  std::optional<int64_t> resolution_rounds;
  std::optional<double> seconds;
  std::optional<bool> resumed;  // true when reused from a checkpoint by --resume
  // The layer's per-iteration statistics as a JSON array (archive attribute
  // iteration_stats); empty in a --dry-run report.
  std::string per_iteration_json;
  double original_mib = 0;  // SizeTracker accounting (engine/size_plan.h)
  double compressed_mib = 0;
};

struct ReportTotals {
  double original_mib = 0;  // the whole model, kept tensors included
  double compressed_mib = 0;
  std::optional<double> seconds;  // unset in a --dry-run report
  double ratio() const { return compressed_mib > 0 ? original_mib / compressed_mib : 0; }
};

// Writes {"model", "config", "dry_run", "layers": [...], "totals": {...}} to `path`
// atomically (temporary file, then rename).
void write_report(const std::string& path, const std::string& model, const std::string& config,
                  bool dry_run, const std::vector<ReportLayer>& layers, const ReportTotals& totals);

}  // namespace pgkm::io
