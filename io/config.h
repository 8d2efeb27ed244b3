// Quantization config: which tensors of a model are quantized, and how.
//
// Two YAML formats (docs/CONFIG.md):
//   fairseq  the file fairseq's iPQ reads (n_centroids, block_sizes, layers_to_quantize),
//            with fairseq's lookup rules (modules/quantization/pq/utils.py);
//   native   `pgkm: 1` with optional defaults, type overrides and ordered rules.
// load_config/parse_config check the file; plan_layers applies it to a model's tensors.
// Every problem is an InputError whose context is the config file's name.
#pragma once

#include <cstdint>
#include <optional>
#include <regex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/limits.h"
#include "engine/kmeans.h"
#include "engine/layout.h"

namespace pgkm::io {

// One tensor of the model (from the safetensors header).
struct TensorDesc {
  std::string name;            // e.g. "encoder.layer.0.attention.self.query.weight"
  std::string dtype;           // safetensors spelling: "F32", "F16", "BF16", "I64", ...
  std::vector<int64_t> shape;  // row-major dimensions
};

// Default classification: a 2-D tensor named "weight" or "*.weight" is an Embedding if its
// name contains "embed", else a Linear; a 4-D one is a Conv2d; everything else is kNone.
ModuleType classify_tensor(const TensorDesc& tensor);

// The module a tensor belongs to: its name without a trailing ".weight".
std::string module_name(const std::string& tensor_name);

// Elements of one output row that are cut into blocks: shape[1] for Linear and
// Embedding, shape[1]*shape[2]*shape[3] for Conv2d. The shape must fit the type.
int64_t row_length(const TensorDesc& tensor, ModuleType type);

// How one tensor is quantized.
struct LayerPlan {
  std::string tensor;                   // tensor name
  ModuleType type = ModuleType::kNone;  // never kNone in a plan
  int block_size = 0;                   // b, 1..32, divides row_length()
  int64_t n_centroids = 0;              // K, 2..65536, at most the number of subvectors
  std::optional<Algorithm> algorithm;   // nullopt: the command line's default
  std::optional<int> iterations;        // nullopt: the command line's default
  std::string rule;                     // the rule or pattern that selected it, for reports
};

// The outcome of applying a config to a model.
struct Plan {
  std::vector<LayerPlan> quantize;    // sorted by tensor name
  std::vector<std::string> keep;      // every other tensor, sorted by name
  std::vector<std::string> warnings;  // e.g. a pattern that matches nothing ("file: line N: ...")
};

// A regular expression from the config, with where it was written.
struct ConfigPattern {
  std::string text;  // as the YAML parser returned it
  std::regex regex;  // ECMAScript syntax
  int line = 0;      // 1-based line in the file; 0 when unknown
};

// fairseq's (key, value) pair for one module type: `key` is a module feature
// (in_features, embedding_dim, in_channels, ...) or "fuzzy_name"; `value` maps a feature
// value (decimal text), a name fragment or "*" to a number, in file order.
struct FairseqParam {
  std::string module_type;  // "Linear", "Embedding" or "Conv2d"
  std::string feature;
  std::vector<std::pair<std::string, int64_t>> values;
  int line = 0;
};

// The fairseq format. A key missing from the file takes fairseq's default
// (quantization_options.py), as fairseq does.
struct FairseqConfig {
  std::vector<FairseqParam> n_centroids;
  std::vector<FairseqParam> block_sizes;
  std::vector<ConfigPattern> layers_to_quantize;  // one per stage, in stage order
};

// Settings a native rule or the native defaults may give; unset fields fall through.
struct NativeSettings {
  std::optional<int> block_size;
  std::optional<int64_t> n_centroids;
  std::optional<Algorithm> algorithm;
  std::optional<int> iterations;
};

// One entry of `rules:`; `match` must match the whole tensor name.
struct NativeRule {
  ConfigPattern match;
  NativeSettings settings;
  bool skip = false;  // keep the tensor as it is
};

// The native format (`pgkm: 1`).
struct NativeConfig {
  NativeSettings defaults;  // block_size and n_centroids always set (built-in 8 and 256)
  std::vector<std::pair<ConfigPattern, ModuleType>> types;  // first full match wins
  std::vector<NativeRule> rules;                            // first full match wins
};

// A parsed config file.
struct QuantConfig {
  enum class Format { kFairseq, kNative };
  std::string path;  // name used in messages
  std::string text;  // the file's exact text, recorded in the archive
  Format format = Format::kNative;
  FairseqConfig fairseq;  // filled when format == kFairseq
  NativeConfig native;    // filled when format == kNative
};

// Reads and parses `path`. Throws InputError (context: path) when it cannot be read or
// is not a valid config.
QuantConfig load_config(const std::string& path);

// Parses config text; `name` names it in errors. Every YAML, regex or value problem is an
// InputError with context `name` and, where known, "line N: " in the message.
QuantConfig parse_config(std::string_view text, const std::string& name);

// Applies `config` to every tensor of a model. Throws InputError when a selected tensor
// cannot be quantized as asked (dtype, type, block size, too few subvectors, missing
// fairseq entry). A pattern or rule that selects nothing is a warning, or an error when
// `strict`.
Plan plan_layers(const QuantConfig& config, const std::vector<TensorDesc>& tensors, bool strict);

}  // namespace pgkm::io
