#include "io/report.h"

#include <nlohmann/json.hpp>

#include "core/atomic_file.h"
#include "io/record_json.h"

namespace pgkm::io {
namespace {

template <typename T>
nlohmann::json or_null(const std::optional<T>& v) {
  return v ? nlohmann::json(*v) : nlohmann::json(nullptr);
}

nlohmann::json layer_entry(const ReportLayer& l) {
  nlohmann::json entry = layer_json(l.record, kReport, l.clustered);
  entry["resumed"] = or_null(l.resumed);
  entry["original_mib"] = l.original_mib;
  entry["compressed_mib"] = l.compressed_mib;
  return entry;
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
    doc["layers"].push_back(layer_entry(l));
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
