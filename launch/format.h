// Text formatting shared by the subcommands' output.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "core/text.h"
#include "engine/size_plan.h"
#include "io/report.h"

namespace pgkm {

inline std::string mib(double bytes, int decimals) {
  return fixed(bytes / kBytesPerMiB, decimals);
}

// A layer's or a model's sizes, the real bytes first and fairseq's SizeTracker figures
// (for comparison with the paper) after them:
// "0.562 -> 0.037 MiB (SizeTracker 0.562 -> 0.040)".
inline std::string sizes_text(const SizeFigures& s, int decimals) {
  return mib(static_cast<double>(s.source_bytes), decimals) + " -> " +
         mib(static_cast<double>(s.archive_bytes), decimals) + " MiB (SizeTracker " +
         fixed(s.tracker_original_mib, decimals) + " -> " +
         fixed(s.tracker_compressed_mib, decimals) + ")";
}

// A model's totals: "source 86.65 MiB -> archive 11.09 MiB on disk, 7.81x; SizeTracker
// 86.64 -> 7.38 MiB, ratio 11.74". `on_disk`: the archive file's size once written.
inline std::string totals_text(const io::ReportTotals& t) {
  const bool written = t.archive_file_bytes.has_value();
  const auto archive = static_cast<double>(t.archive_file_bytes.value_or(t.sizes.archive_bytes));
  return "source " + mib(static_cast<double>(t.sizes.source_bytes), 2) + " MiB -> archive " +
         mib(archive, 2) + " MiB " + (written ? "on disk" : "planned") + ", " +
         fixed(t.ratio_on_disk(), 2) + "x; fairseq SizeTracker " +
         fixed(t.sizes.tracker_original_mib, 2) + " -> " +
         fixed(t.sizes.tracker_compressed_mib, 2) + " MiB, ratio " + fixed(t.ratio(), 2);
}

inline int digits(size_t n) {
  return static_cast<int>(std::to_string(n).size());
}

// "[ 3/37] name [384, 384] b=4 K=256 pg: empty 0, objective 1.43e+02, 1.05 s,
//  0.562 -> 0.037 MiB (SizeTracker 0.562 -> 0.040)"
inline std::string layer_line(size_t index, size_t total, const io::ReportLayer& row) {
  const LayerRecord& l = row.record;
  char head[32];
  std::snprintf(head, sizeof head, "[%*zu/%zu]", digits(total), index + 1, total);
  char objective[32];
  std::snprintf(objective, sizeof objective, "%.4g", l.stats.objective);
  return std::string(head) + " " + l.name + " " + shape_text(l.shape) +
         " b=" + std::to_string(l.settings.block_size) +
         " K=" + std::to_string(l.settings.kmeans.n_centroids) + " " +
         algorithm_name(l.settings.kmeans.algorithm) + ": empty " +
         std::to_string(l.stats.empty_clusters) + ", objective " + objective + ", " +
         fixed(l.stats.seconds_total, 2) + " s, " + sizes_text(row.sizes, 3) +
         (row.resumed.value_or(false) ? " (resumed)" : "");
}

}  // namespace pgkm
