// Layer records as JSON, driven by the field table of engine/layer_record.h: the JSON
// report, the archive's iteration_stats attribute and the archive header's settings.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "engine/layer_record.h"

namespace pgkm::io {

// The fields of `record` whose uses include `use` (kReport: under their report_name).
// With `with_stats` false every statistic is null (a dry-run report).
nlohmann::json layer_json(const LayerRecord& record, unsigned use, bool with_stats = true);

// The per-iteration statistics as a JSON array of objects (fields with `use`).
nlohmann::json iteration_stats_json(const std::vector<IterationStats>& stats, unsigned use);
// Inverse of iteration_stats_json(.., kArchive) for one parsed array; throws
// InputError(context, ...) naming the iteration and key when a value is missing or of the
// wrong type.
std::vector<IterationStats> parse_iteration_stats(const nlohmann::json& array,
                                                  const std::string& context);

// The run-wide defaults (kHeader fields) of `settings` as a JSON object.
nlohmann::json header_settings_json(const LayerSettings& settings);

}  // namespace pgkm::io
