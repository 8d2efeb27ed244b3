#include "io/record_json.h"

#include <type_traits>

#include "core/errors.h"

namespace pgkm::io {
namespace {

template <typename T>
nlohmann::json value_json(const T& value, unsigned use) {
  if constexpr (std::is_enum_v<T>) {
    return field_text(value);
  } else if constexpr (std::is_same_v<T, std::vector<IterationStats>>) {
    return iteration_stats_json(value, use);
  } else {
    return value;
  }
}

}  // namespace

nlohmann::json iteration_stats_json(const std::vector<IterationStats>& stats, unsigned use) {
  nlohmann::json array = nlohmann::json::array();
  for (const IterationStats& s : stats) {
    nlohmann::json object = nlohmann::json::object();
    for_each_iteration_field(s, [&](const FieldInfo& f, const auto& value) {
      if (f.uses & use) object[f.name] = value;
    });
    array.push_back(std::move(object));
  }
  return array;
}

std::vector<IterationStats> parse_iteration_stats(const nlohmann::json& array,
                                                  const std::string& context) {
  PGKM_EXPECTS(array.is_array(), context, "iteration statistics are not a JSON array");
  std::vector<IterationStats> out(array.size());
  for (size_t i = 0; i < array.size(); ++i) {
    const nlohmann::json& object = array[i];
    PGKM_EXPECTS(object.is_object(), context, "iteration ", i, " is not a JSON object");
    out[i].iteration = static_cast<int>(i);
    for_each_iteration_field(out[i], [&](const FieldInfo& f, auto& value) {
      if ((f.uses & kArchive) == 0) return;
      const auto it = object.find(f.name);
      PGKM_EXPECTS(it != object.end() && it->is_number(), context, "iteration ", i, ": '", f.name,
                   "' is missing or not a number");
      value = it->template get<std::decay_t<decltype(value)>>();
    });
  }
  return out;
}

nlohmann::json layer_json(const LayerRecord& record, unsigned use, bool with_stats) {
  nlohmann::json object = nlohmann::json::object();
  for_each_layer_field(record, [&](const FieldInfo& f, const auto& value) {
    if ((f.uses & use) == 0) return;
    const char* key = use == kReport && f.report_name != nullptr ? f.report_name : f.name;
    object[key] = f.statistic && !with_stats ? nlohmann::json(nullptr) : value_json(value, use);
  });
  return object;
}

nlohmann::json header_settings_json(const LayerSettings& settings) {
  LayerRecord record;
  record.settings = settings;
  return layer_json(record, kHeader);
}

}  // namespace pgkm::io
