#include "io/report.h"

#include <nlohmann/json.hpp>

#include "core/atomic_file.h"

namespace pgkm::io {
namespace {

template <typename T>
nlohmann::json or_null(const std::optional<T>& v) {
  return v ? nlohmann::json(*v) : nlohmann::json(nullptr);
}

nlohmann::json layer_json(const ReportLayer& l) {
  return {
      {"name", l.name},
      {"shape", l.shape},
      {"block_size", l.block_size},
      {"n_centroids", l.n_centroids},
      {"algorithm", l.algorithm},
      {"empty_clusters", or_null(l.empty_clusters)},
      {"objective", or_null(l.objective)},
      {"iterations", or_null(l.iterations)},
      {"resolution_rounds", or_null(l.resolution_rounds)},
      {"seconds", or_null(l.seconds)},
      {"resumed", or_null(l.resumed)},
      {"per_iteration", l.per_iteration_json.empty() ? nlohmann::json(nullptr)
                                                     : nlohmann::json::parse(l.per_iteration_json)},
      {"original_mib", l.original_mib},
      {"compressed_mib", l.compressed_mib}};
}

}  // namespace

void write_report(const std::string& path, const std::string& model, const std::string& config,
                  bool dry_run, const std::vector<ReportLayer>& layers,
                  const ReportTotals& totals) {
  nlohmann::json doc;
  doc["model"] = model;
  doc["config"] = config;
  doc["dry_run"] = dry_run;
  doc["layers"] = nlohmann::json::array();
  for (const ReportLayer& l : layers)
    doc["layers"].push_back(layer_json(l));
  doc["totals"] = {{"layers", layers.size()},
                   {"original_mib", totals.original_mib},
                   {"compressed_mib", totals.compressed_mib},
                   {"ratio", totals.ratio()},
                   {"seconds", or_null(totals.seconds)}};
  AtomicFile out(path);
  out.write(doc.dump(2) + "\n");
  out.commit();
}

}  // namespace pgkm::io
