// The native format (`pgkm: 1`): defaults, type overrides and ordered rules whose first
// full match on a tensor name decides (docs/CONFIG.md).
#include <algorithm>

#include "core/errors.h"
#include "io/config_detail.h"

namespace pgkm::io::detail {
namespace {

const std::vector<std::string> kSettingKeys = {"block_size", "n_centroids", "algorithm",
                                               "iterations"};
constexpr int kDefaultBlockSize = 8;
constexpr int64_t kDefaultCentroids = 256;

// The settings keys present in `node`, a map whose keys were already checked.
NativeSettings read_settings(const YAML::Node& node, const std::string& file) {
  NativeSettings settings;
  if (node["block_size"].IsDefined()) {
    settings.block_size = static_cast<int>(
        int_in_range(node["block_size"], file, "block_size", kMinBlockSize, kMaxBlockSize));
  }
  if (node["n_centroids"].IsDefined()) {
    settings.n_centroids =
        int_in_range(node["n_centroids"], file, "n_centroids", kMinCentroids, kMaxCentroids);
  }
  if (node["algorithm"].IsDefined()) {
    settings.algorithm = algorithm_value(node["algorithm"], file, "algorithm");
  }
  if (node["iterations"].IsDefined()) {
    settings.iterations =
        static_cast<int>(int_in_range(node["iterations"], file, "iterations", 0, kMaxIterations));
  }
  return settings;
}

bool has_settings(const NativeSettings& s) {
  return s.block_size || s.n_centroids || s.algorithm || s.iterations;
}

ModuleType type_value(const YAML::Node& node, const std::string& file) {
  const std::string text = scalar_text(node, file, "a types value");
  if (text == "linear") return ModuleType::kLinear;
  if (text == "embedding") return ModuleType::kEmbedding;
  if (text == "conv2d") return ModuleType::kConv2d;
  if (text == "none") return ModuleType::kNone;
  fail_at(file, node, str_cat("type '", text, "' is not linear, embedding, conv2d or none"));
}

NativeRule parse_rule(const YAML::Node& node, const std::string& file, size_t index) {
  const std::string what = str_cat("rules[", index, "]");
  std::vector<std::string> allowed = {"match", "skip"};
  allowed.insert(allowed.end(), kSettingKeys.begin(), kSettingKeys.end());
  check_keys(node, file, what, allowed);
  if (!node["match"].IsDefined()) fail_at(file, node, str_cat(what, " needs match: <regex>"));
  NativeRule rule;
  rule.match = read_pattern(node["match"], file, what + ".match", MatchMode::kFull);
  rule.settings = read_settings(node, file);
  if (node["skip"].IsDefined()) rule.skip = bool_value(node["skip"], file, "skip");
  if (rule.skip && has_settings(rule.settings)) {
    fail_at(file, node,
            str_cat(what, " has skip: true and quantization settings; a skipped ",
                    "tensor is kept as it is, so give it none"));
  }
  return rule;
}

std::string rule_label(const NativeRule& rule, size_t index) {
  return str_cat("rules[", index, "] '", rule.match.text, "' (line ", rule.match.line, ")");
}

// The type of `tensor`: the first `types:` entry matching its name, else classify_tensor.
ModuleType tensor_type(const QuantConfig& config, const TensorDesc& tensor,
                       std::vector<int64_t>& type_hits) {
  const auto& types = config.native.types;
  for (size_t t = 0; t < types.size(); ++t) {
    if (pattern_matches(types[t].first, MatchMode::kFull, tensor.name, config.path)) {
      ++type_hits[t];
      return types[t].second;
    }
  }
  return classify_tensor(tensor);
}

LayerPlan plan_tensor(const QuantConfig& config, const TensorDesc& tensor, ModuleType type,
                      size_t rule_index) {
  const NativeSettings& defaults = config.native.defaults;
  const NativeRule& rule = config.native.rules[rule_index];
  LayerPlan layer;
  layer.tensor = tensor.name;
  layer.type = type;
  layer.rule = rule_label(rule, rule_index);
  layer.block_size = rule.settings.block_size.value_or(*defaults.block_size);
  layer.n_centroids = rule.settings.n_centroids.value_or(*defaults.n_centroids);
  layer.algorithm = rule.settings.algorithm ? rule.settings.algorithm : defaults.algorithm;
  layer.iterations = rule.settings.iterations ? rule.settings.iterations : defaults.iterations;
  check_quantizable(config.path, tensor, type, layer.rule);
  check_blocks(config.path, tensor, type, layer.block_size, layer.n_centroids, layer.rule);
  return layer;
}

// Warnings (errors when strict) for type overrides and rules that decided no tensor.
void report_unused(const QuantConfig& config, const std::vector<std::string>& names,
                   const std::vector<int64_t>& type_hits, const std::vector<int64_t>& rule_hits,
                   bool strict, Plan& plan) {
  const NativeConfig& native = config.native;
  for (size_t t = 0; t < native.types.size(); ++t) {
    if (type_hits[t] > 0) continue;
    const ConfigPattern& pattern = native.types[t].first;
    const std::string label = str_cat("types '", pattern.text, "' (line ", pattern.line, ")");
    warn_or_throw(plan, strict, config.path,
                  no_match_message(pattern, MatchMode::kFull, label, names, "tensor"));
  }
  for (size_t r = 0; r < native.rules.size(); ++r) {
    if (rule_hits[r] > 0) continue;
    const NativeRule& rule = native.rules[r];
    const auto matched = std::count_if(names.begin(), names.end(), [&](const std::string& name) {
      return pattern_matches(rule.match, MatchMode::kFull, name, config.path);
    });
    const std::string label = rule_label(rule, r);
    warn_or_throw(plan, strict, config.path,
                  matched == 0
                      ? no_match_message(rule.match, MatchMode::kFull, label, names, "tensor")
                      : str_cat(label, " decides no tensor: the ", matched,
                                " it matches are all taken by earlier rules"));
  }
}

}  // namespace

NativeConfig parse_native(const YAML::Node& root, const std::string& file) {
  check_keys(root, file, "a native config", {"pgkm", "defaults", "types", "rules"});
  if (!root["pgkm"].IsDefined()) fail_at(file, root, "a native config starts with 'pgkm: 1'");
  const std::string version = scalar_text(root["pgkm"], file, "pgkm");
  if (version != "1") {
    fail_at(file, root["pgkm"],
            str_cat("pgkm: ", version, " is not a version this pgkm reads (1)"));
  }
  NativeConfig config;
  if (root["defaults"].IsDefined()) {
    check_keys(root["defaults"], file, "defaults", kSettingKeys);
    config.defaults = read_settings(root["defaults"], file);
  }
  config.defaults.block_size = config.defaults.block_size.value_or(kDefaultBlockSize);
  config.defaults.n_centroids = config.defaults.n_centroids.value_or(kDefaultCentroids);
  if (root["types"].IsDefined()) {
    map_keys(root["types"], file, "types");
    for (const auto& entry : root["types"]) {
      config.types.emplace_back(read_pattern(entry.first, file, "types pattern", MatchMode::kFull),
                                type_value(entry.second, file));
    }
  }
  const YAML::Node rules = root["rules"];
  if (!rules.IsDefined() || !rules.IsSequence() || rules.size() == 0) {
    fail_at(file, rules.IsDefined() ? rules : root, "rules must be a non-empty list");
  }
  for (size_t r = 0; r < rules.size(); ++r)
    config.rules.push_back(parse_rule(rules[r], file, r));
  return config;
}

Plan plan_native(const QuantConfig& config, const std::vector<TensorDesc>& tensors, bool strict) {
  const NativeConfig& native = config.native;
  std::vector<int64_t> type_hits(native.types.size(), 0);
  std::vector<int64_t> rule_hits(native.rules.size(), 0);
  std::vector<std::string> names;
  Plan plan;
  for (size_t i : name_order(tensors)) {
    const TensorDesc& tensor = tensors[i];
    names.push_back(tensor.name);
    const ModuleType type = tensor_type(config, tensor, type_hits);
    const auto rule = std::find_if(native.rules.begin(), native.rules.end(), [&](const auto& r) {
      return pattern_matches(r.match, MatchMode::kFull, tensor.name, config.path);
    });
    if (rule == native.rules.end()) {
      plan.keep.push_back(tensor.name);
      continue;
    }
    const auto index = static_cast<size_t>(rule - native.rules.begin());
    ++rule_hits[index];
    if (rule->skip) {
      plan.keep.push_back(tensor.name);
    } else {
      plan.quantize.push_back(plan_tensor(config, tensor, type, index));
    }
  }
  report_unused(config, names, type_hits, rule_hits, strict, plan);
  return plan;
}

}  // namespace pgkm::io::detail
