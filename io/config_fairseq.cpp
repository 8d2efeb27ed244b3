// The fairseq format, read and applied as fairseq's iPQ does
// (fairseq/modules/quantization/quantization_options.py and pq/utils.py: get_layers,
// get_param). Where fairseq silently takes the first of several fuzzy_name keys a
// module name contains, pgkm does the same and says so in a warning.
#include <algorithm>
#include <optional>

#include "core/errors.h"
#include "io/config_detail.h"

namespace pgkm::io::detail {
namespace {

const std::vector<std::string> kModuleTypes = {"Linear", "Embedding", "Conv2d"};

// The module attributes fairseq's get_param may read, per module type.
std::vector<std::string> features_of(const std::string& type) {
  if (type == "Linear") return {"in_features", "out_features", "fuzzy_name"};
  if (type == "Embedding") return {"embedding_dim", "num_embeddings", "fuzzy_name"};
  return {"in_channels", "out_channels", "kernel_size", "fuzzy_name"};
}

std::string joined(const std::vector<std::string>& items) {
  std::string text;
  for (const std::string& item : items)
    text += (text.empty() ? "" : ", ") + item;
  return text;
}

// One `Type: {key: feature, value: {...}}` entry of n_centroids or block_sizes.
FairseqParam parse_param(const YAML::Node& type_key, const YAML::Node& entry,
                         const std::string& file, const std::string& table, int64_t lo,
                         int64_t hi) {
  FairseqParam param;
  param.module_type = type_key.Scalar();
  param.line = node_line(type_key);
  if (std::find(kModuleTypes.begin(), kModuleTypes.end(), param.module_type) ==
      kModuleTypes.end()) {
    fail_at(file, type_key,
            str_cat("unknown module type '", param.module_type, "' in ", table, "; expected ",
                    joined(kModuleTypes)));
  }
  const std::string where = table + "." + param.module_type;
  check_keys(entry, file, where, {"key", "value"});
  if (!entry["key"].IsDefined() || !entry["value"].IsDefined()) {
    fail_at(file, entry, str_cat(where, " needs both key: and value:"));
  }
  param.feature = scalar_text(entry["key"], file, where + ".key");
  const std::vector<std::string> features = features_of(param.module_type);
  if (std::find(features.begin(), features.end(), param.feature) == features.end()) {
    fail_at(file, entry["key"],
            str_cat(where, ".key '", param.feature, "' is not one of ", joined(features)));
  }
  const YAML::Node values = entry["value"];
  map_keys(values, file, where + ".value");
  for (const auto& value : values) {
    const std::string key = value.first.Scalar();
    param.values.emplace_back(
        key, int_in_range(value.second, file, str_cat(table, " value for '", key, "'"), lo, hi));
  }
  if (param.values.empty()) fail_at(file, values, str_cat(where, ".value is empty"));
  return param;
}

std::vector<FairseqParam> parse_table(const YAML::Node& node, const std::string& file,
                                      const std::string& table, int64_t lo, int64_t hi) {
  map_keys(node, file, table);
  std::vector<FairseqParam> params;
  for (const auto& entry : node) {
    params.push_back(parse_param(entry.first, entry.second, file, table, lo, hi));
  }
  return params;
}

// fairseq's defaults (quantization_options.py), used for a key the file leaves out.
FairseqConfig fairseq_defaults() {
  FairseqConfig config;
  config.n_centroids = {{"Linear", "in_features", {{"*", 256}}, 0},
                        {"Embedding", "embedding_dim", {{"*", 256}}, 0}};
  config.block_sizes = {{"Linear", "fuzzy_name", {{"fc", 8}, {"attn", 4}, {"emb", 4}}, 0},
                        {"Embedding", "fuzzy_name", {{"emb", 8}}, 0}};
  for (const char* text :
       {"decoder\\.layers\\.\\d+\\.fc[12]", "decoder\\.embed_tokens\\.embeddings\\.[012]\\.[01]",
        "decoder\\.layers\\.\\d+\\.self_attn\\.(k_proj|v_proj|q_proj|out_proj)"}) {
    config.layers_to_quantize.push_back(make_pattern(text, 0, MatchMode::kPrefix));
  }
  return config;
}

// The value of the module attribute `feature` as Python's str() prints it.
std::string feature_text(const TensorDesc& tensor, const std::string& feature) {
  if (feature == "out_features" || feature == "num_embeddings" || feature == "out_channels") {
    return std::to_string(tensor.shape[0]);
  }
  if (feature == "kernel_size") return str_cat("(", tensor.shape[2], ", ", tensor.shape[3], ")");
  return std::to_string(tensor.shape[1]);
}

// fairseq's get_param: the number `table` gives the module.
int64_t lookup(const std::vector<FairseqParam>& table, const std::string& table_name,
               const TensorDesc& tensor, ModuleType type, const std::string& file,
               std::vector<std::string>& warnings) {
  const std::string module = module_name(tensor.name);
  const std::string type_name = module_type_name(type);
  const auto param = std::find_if(table.begin(), table.end(), [&](const FairseqParam& p) {
    return p.module_type == type_name;
  });
  if (param == table.end()) {
    throw InputError(file, str_cat(table_name, " has no ", type_name, " entry, needed by module '",
                                   module, "'"));
  }
  const std::string where = str_cat(line_prefix(param->line), table_name, ".", type_name);
  const auto find = [&](const std::string& key) {
    return std::find_if(param->values.begin(), param->values.end(),
                        [&](const auto& v) { return v.first == key; });
  };
  std::optional<std::string> key;
  std::string wanted;
  if (param->feature == "fuzzy_name") {
    std::vector<std::string> found;
    for (const auto& entry : param->values) {
      if (entry.first != "*" && module.find(entry.first) != std::string::npos) {
        found.push_back(entry.first);
      }
    }
    if (found.size() > 1) {
      warnings.push_back(str_cat(file, ": ", where, ": module '", module,
                                 "' contains several fuzzy_name keys (", joined(found),
                                 "); taking '", found[0],
                                 "' as fairseq does (first in file "
                                 "order); make the keys unambiguous to silence this"));
    }
    if (!found.empty()) key = found[0];
    wanted = "any of its fuzzy_name keys";
  } else {
    const std::string value = feature_text(tensor, param->feature);
    if (find(value) != param->values.end()) key = value;
    wanted = str_cat(param->feature, "=", value);
  }
  if (!key && find("*") == param->values.end()) {
    throw InputError(file, str_cat(where, ": module '", module, "' does not match ", wanted,
                                   " and there is no '*' entry"));
  }
  return find(key.value_or("*"))->second;
}

LayerPlan plan_tensor(const QuantConfig& config, const TensorDesc& tensor, const std::string& rule,
                      std::vector<std::string>& warnings) {
  LayerPlan layer;
  layer.tensor = tensor.name;
  layer.type = classify_tensor(tensor);
  layer.rule = rule;
  check_quantizable(config.path, tensor, layer.type, rule);
  layer.block_size = static_cast<int>(
      lookup(config.fairseq.block_sizes, "block_sizes", tensor, layer.type, config.path, warnings));
  layer.n_centroids =
      lookup(config.fairseq.n_centroids, "n_centroids", tensor, layer.type, config.path, warnings);
  check_blocks(config.path, tensor, layer.type, layer.block_size, layer.n_centroids, rule);
  return layer;
}

std::string stage_label(const FairseqConfig& config, size_t stage) {
  const ConfigPattern& pattern = config.layers_to_quantize[stage];
  return str_cat("layers_to_quantize[", stage, "] '", pattern.text, "'",
                 pattern.line > 0 ? str_cat(" (line ", pattern.line, ")") : " (fairseq default)");
}

}  // namespace

FairseqConfig parse_fairseq(const YAML::Node& root, const std::string& file) {
  check_keys(root, file, "a fairseq config", {"n_centroids", "block_sizes", "layers_to_quantize"});
  FairseqConfig config = fairseq_defaults();
  if (root["n_centroids"].IsDefined()) {
    config.n_centroids =
        parse_table(root["n_centroids"], file, "n_centroids", kMinCentroids, kMaxCentroids);
  }
  if (root["block_sizes"].IsDefined()) {
    config.block_sizes =
        parse_table(root["block_sizes"], file, "block_sizes", kMinBlockSize, kMaxBlockSize);
  }
  if (root["layers_to_quantize"].IsDefined()) {
    const YAML::Node patterns = root["layers_to_quantize"];
    if (!patterns.IsSequence() || patterns.size() == 0) {
      fail_at(file, patterns, "layers_to_quantize must be a non-empty list of regexes");
    }
    config.layers_to_quantize.clear();
    for (const auto& pattern : patterns) {
      config.layers_to_quantize.push_back(
          read_pattern(pattern, file, "layers_to_quantize pattern", MatchMode::kPrefix));
    }
  }
  return config;
}

Plan plan_fairseq(const QuantConfig& config, const std::vector<TensorDesc>& tensors, bool strict) {
  const FairseqConfig& fairseq = config.fairseq;
  const size_t n_stages = fairseq.layers_to_quantize.size();
  // fairseq matches parameter names with ".weight" removed and biases dropped.
  std::vector<std::string> modules;
  std::vector<int> stage_of(tensors.size(), -1);
  std::vector<int64_t> hits(n_stages, 0);
  for (size_t i : name_order(tensors)) {
    if (is_bias(tensors[i].name)) continue;
    modules.push_back(module_name(tensors[i].name));
    for (size_t s = 0; s < n_stages; ++s) {
      if (!pattern_matches(fairseq.layers_to_quantize[s], MatchMode::kPrefix, modules.back(),
                           config.path)) {
        continue;
      }
      ++hits[s];
      if (stage_of[i] < 0) stage_of[i] = static_cast<int>(s);
    }
  }
  Plan plan;
  for (size_t s = 0; s < n_stages; ++s) {
    if (hits[s] > 0) continue;
    warn_or_throw(plan, strict, config.path,
                  no_match_message(fairseq.layers_to_quantize[s], MatchMode::kPrefix,
                                   stage_label(fairseq, s), modules, "module"));
  }
  for (size_t i : name_order(tensors)) {
    if (stage_of[i] < 0) {
      plan.keep.push_back(tensors[i].name);
    } else {
      plan.quantize.push_back(plan_tensor(config, tensors[i],
                                          stage_label(fairseq, static_cast<size_t>(stage_of[i])),
                                          plan.warnings));
    }
  }
  return plan;
}

}  // namespace pgkm::io::detail
