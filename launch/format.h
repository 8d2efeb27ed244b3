// Text formatting shared by the subcommands' output.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "core/text.h"
#include "io/report.h"

namespace pgkm {

inline int digits(size_t n) {
  return static_cast<int>(std::to_string(n).size());
}

// "[ 3/37] name [384, 384] b=4 K=256 pg: empty 0, objective 1.43e+02, 1.05 s, 0.56 -> 0.04 MiB"
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
         fixed(l.stats.seconds_total, 2) + " s, " + fixed(row.original_mib, 3) + " -> " +
         fixed(row.compressed_mib, 3) + " MiB" + (row.resumed.value_or(false) ? " (resumed)" : "");
}

}  // namespace pgkm
