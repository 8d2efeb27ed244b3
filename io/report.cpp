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

void add_sizes(nlohmann::json& object, const SizeFigures& sizes) {
  for_each_size_field(sizes,
                      [&](const SizeField& f, const auto& value) { object[f.name] = value; });
}

nlohmann::json layer_entry(const ReportLayer& l) {
  nlohmann::json entry = layer_json(l.record, kReport, l.clustered);
  entry["resumed"] = or_null(l.resumed);
  add_sizes(entry, l.sizes);
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
  nlohmann::json t = {{"layers", layers.size()}};
  add_sizes(t, totals.sizes);
  t["ratio"] = totals.ratio();
  t["archive_file_bytes"] = or_null(totals.archive_file_bytes);
  t["ratio_on_disk"] = totals.ratio_on_disk();
  t["seconds"] = or_null(totals.seconds);
  doc["totals"] = std::move(t);
  AtomicFile out(path);
  out.write(doc.dump(2) + "\n");
  out.commit();
}

}  // namespace pgkm::io
