// Config loading, format detection, tensor classification and the checks shared by both
// formats. The formats themselves live in config_fairseq.cpp and config_native.cpp.
#include "io/config.h"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <numeric>
#include <sstream>

#include "core/errors.h"
#include "core/file_checks.h"
#include "core/text.h"
#include "io/config_detail.h"

#include <yaml-cpp/anchor.h>
#include <yaml-cpp/eventhandler.h>

namespace pgkm::io {

namespace detail {

int node_line(const YAML::Node& node) {
  const YAML::Mark mark = node.Mark();
  return mark.is_null() ? 0 : mark.line + 1;
}

std::string line_prefix(int line) {
  return line > 0 ? str_cat("line ", line, ": ") : "";
}

void fail_at(const std::string& file, const YAML::Node& node, const std::string& message) {
  throw InputError(file, line_prefix(node_line(node)) + message);
}

std::string scalar_text(const YAML::Node& node, const std::string& file, const std::string& what) {
  if (!node.IsScalar()) fail_at(file, node, str_cat(what, " must be a single value"));
  return node.Scalar();
}

std::vector<std::string> map_keys(const YAML::Node& node, const std::string& file,
                                  const std::string& what) {
  if (!node.IsMap()) fail_at(file, node, str_cat(what, " must be a mapping (key: value)"));
  std::vector<std::string> keys;
  for (const auto& entry : node) {
    std::string key = scalar_text(entry.first, file, str_cat("a key of ", what));
    if (std::find(keys.begin(), keys.end(), key) != keys.end()) {
      fail_at(file, entry.first, str_cat("duplicate key '", key, "' in ", what));
    }
    keys.push_back(std::move(key));
  }
  return keys;
}

void check_keys(const YAML::Node& node, const std::string& file, const std::string& what,
                const std::vector<std::string>& allowed) {
  map_keys(node, file, what);
  for (const auto& entry : node) {
    const std::string key = entry.first.Scalar();
    if (std::find(allowed.begin(), allowed.end(), key) != allowed.end()) continue;
    std::string list;
    for (const std::string& a : allowed)
      list += (list.empty() ? "" : ", ") + a;
    fail_at(file, entry.first, str_cat("unknown key '", key, "' in ", what, "; expected ", list));
  }
}

int64_t int_in_range(const YAML::Node& node, const std::string& file, const std::string& key,
                     int64_t lo, int64_t hi) {
  const std::string text = scalar_text(node, file, key);
  int64_t value = 0;
  const char* end = text.data() + text.size();
  const auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (ec == std::errc::invalid_argument || ptr != end || text.empty()) {
    fail_at(file, node, str_cat(key, " must be an integer, got '", text, "'"));
  }
  if (ec == std::errc::result_out_of_range || value < lo || value > hi) {
    fail_at(file, node, str_cat(key, " ", text, " is outside ", lo, "..", hi));
  }
  return value;
}

bool bool_value(const YAML::Node& node, const std::string& file, const std::string& key) {
  const std::string text = scalar_text(node, file, key);
  if (text == "true" || text == "True" || text == "TRUE") return true;
  if (text == "false" || text == "False" || text == "FALSE") return false;
  fail_at(file, node, str_cat(key, " must be true or false, got '", text, "'"));
}

Algorithm algorithm_value(const YAML::Node& node, const std::string& file, const std::string& key) {
  const std::string text = scalar_text(node, file, key);
  try {
    return parse_algorithm(text);
  } catch (const InputError&) {
    fail_at(file, node, str_cat(key, " '", text, "' is not pg, pg-base or ipq"));
  }
}

namespace {

// Before std::regex sees a pattern: the library compiles and matches recursively, so a
// deeply nested pattern overflows the stack (20,000 '(' crashed pgkm), and a huge one
// takes memory and time for nothing. Tensor names are short; these bounds are far above
// any real pattern.
constexpr size_t kMaxPatternBytes = 4096;
constexpr int kMaxPatternNesting = 32;

// Invalid UTF-8 in a pattern: a tensor name (JSON text) is valid UTF-8, so such a pattern
// can only be a mistake (a file saved in another encoding).
size_t first_invalid_utf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    size_t extra = 0;
    if (c >= 0xc2 && c <= 0xdf) {
      extra = 1;
    } else if (c >= 0xe0 && c <= 0xef) {
      extra = 2;
    } else if (c >= 0xf0 && c <= 0xf4) {
      extra = 3;
    } else if (c >= 0x80) {
      return i;  // a continuation byte out of place, or a lead byte UTF-8 never uses
    }
    if (s.size() - i <= extra) return i;  // cut short
    for (size_t k = 1; k <= extra; ++k) {
      if ((static_cast<unsigned char>(s[i + k]) & 0xc0) != 0x80) return i;
    }
    i += extra + 1;
  }
  return std::string_view::npos;
}

std::string hex_byte(char c) {
  char buf[4];
  std::snprintf(buf, sizeof buf, "%02x", static_cast<unsigned char>(c));
  return buf;
}

void check_pattern_limits(const std::string& text) {
  if (text.size() > kMaxPatternBytes) {
    throw PatternLimitError(str_cat("it is ", text.size(), " bytes long, more than the ",
                                    kMaxPatternBytes, " pgkm accepts"));
  }
  if (const size_t bad = first_invalid_utf8(text); bad != std::string_view::npos) {
    throw PatternLimitError(str_cat("it is not valid UTF-8 (byte ", bad, " is 0x",
                                    hex_byte(text[bad]),
                                    "); tensor names are UTF-8, so it could never match"));
  }
  int depth = 0, deepest = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\\') {
      ++i;  // an escaped character opens nothing
    } else if (text[i] == '(' || text[i] == '[') {
      deepest = std::max(deepest, ++depth);
    } else if ((text[i] == ')' || text[i] == ']') && depth > 0) {
      --depth;
    }
  }
  if (deepest > kMaxPatternNesting) {
    throw PatternLimitError(str_cat("it nests groups ", deepest, " deep, more than the ",
                                    kMaxPatternNesting, " pgkm accepts"));
  }
}

// libstdc++'s default regex executor backtracks and takes exponential time on patterns such
// as "(.*)*x"; its polynomial one (a Thompson NFA) does not, and rejects backreferences.
#if defined(__GLIBCXX__)
constexpr std::regex::flag_type kRegexFlags =
    std::regex::ECMAScript | std::regex_constants::__polynomial;
#else
constexpr std::regex::flag_type kRegexFlags = std::regex::ECMAScript;
#endif

bool regex_hits(const std::regex& regex, MatchMode mode, const std::string& name) {
  if (mode == MatchMode::kFull) return std::regex_match(name, regex);
  return std::regex_search(name, regex, std::regex_constants::match_continuous);
}

}  // namespace

ConfigPattern make_pattern(const std::string& text, int line, MatchMode mode) {
  check_pattern_limits(text);
  ConfigPattern pattern{text, std::regex(text, kRegexFlags), line};
  // fairseq compiles "(module\.)?(" + pattern + ")" and calls re.match. The pattern is
  // compiled alone first so that e.g. "a)|(b" is rejected rather than changed by the wrap.
  if (mode == MatchMode::kPrefix) {
    pattern.regex = std::regex("(?:module\\.)?(?:" + text + ")", kRegexFlags);
  }
  return pattern;
}

ConfigPattern read_pattern(const YAML::Node& node, const std::string& file, const std::string& what,
                           MatchMode mode) {
  const std::string text = scalar_text(node, file, what);
  try {
    return make_pattern(text, node_line(node), mode);
  } catch (const std::regex_error& e) {
    fail_at(file, node, str_cat(what, " '", text, "' is not a valid regex: ", e.what()));
  } catch (const PatternLimitError& e) {
    // Shown cut short and with bytes outside printable ASCII as \xNN: the message must
    // itself be one short line of valid text.
    std::string shown;
    for (char c : text.substr(0, 80)) {
      const auto u = static_cast<unsigned char>(c);
      shown += u >= 0x20 && u < 0x7f ? std::string(1, c) : "\\x" + hex_byte(c);
    }
    fail_at(file, node,
            str_cat(what, " '", shown, text.size() > 80 ? "...'" : "'", " is refused: ", e.what()));
  }
}

bool pattern_matches(const ConfigPattern& pattern, MatchMode mode, const std::string& name,
                     const std::string& file) {
  try {
    return regex_hits(pattern.regex, mode, name);
  } catch (const std::regex_error& e) {
    throw InputError(file, str_cat(line_prefix(pattern.line), "pattern '", pattern.text,
                                   "' is too complex to apply to '", name, "': ", e.what()));
  }
}

std::string no_match_message(const ConfigPattern& pattern, MatchMode mode, const std::string& label,
                             const std::vector<std::string>& names, const std::string& noun) {
  std::string message = str_cat(label, " matches no ", noun, " (of ", names.size(), ")");
  std::string fixed = pattern.text;
  const bool doubled = fixed.find("\\\\") != std::string::npos;
  for (size_t at = fixed.find("\\\\"); at != std::string::npos; at = fixed.find("\\\\", at + 1)) {
    fixed.erase(at, 1);
  }
  if (!doubled) return message;
  message += str_cat(
      ". It contains doubled backslashes: YAML keeps both backslashes of an unquoted scalar, "
      "so '\\\\.' asks for a literal backslash. Write single backslashes and quote the pattern: '",
      fixed, "'");
  try {
    const std::regex regex = make_pattern(fixed, 0, mode).regex;
    const auto hits = std::count_if(names.begin(), names.end(), [&](const std::string& name) {
      return regex_hits(regex, mode, name);
    });
    message += str_cat(", which would match ", hits, " ", noun, hits == 1 ? "" : "s");
  } catch (const std::exception&) {  // std::regex_error or PatternLimitError
    message += " (which does not compile either)";
  }
  return message;
}

void warn_or_throw(Plan& plan, bool strict, const std::string& file, const std::string& message) {
  if (strict) throw InputError(file, message + " (strict mode)");
  plan.warnings.push_back(str_cat(file, ": ", message));
}

bool is_bias(const std::string& tensor_name) {
  const std::string_view name(tensor_name);
  return name == "bias" || name.ends_with(".bias");
}

namespace {

bool shape_fits(const TensorDesc& tensor, ModuleType type) {
  const size_t rank = type == ModuleType::kConv2d ? 4 : 2;
  if (tensor.shape.size() != rank) return false;
  return std::all_of(tensor.shape.begin(), tensor.shape.end(), [](int64_t d) { return d > 0; });
}

// Subvectors of the tensor at block size b, saturating instead of overflowing.
int64_t subvector_count(const TensorDesc& tensor, ModuleType type, int b) {
  int64_t count = 0;
  if (__builtin_mul_overflow(tensor.shape[0], row_length(tensor, type) / b, &count)) {
    return INT64_MAX;
  }
  return count;
}

}  // namespace

void check_quantizable(const std::string& file, const TensorDesc& tensor, ModuleType type,
                       const std::string& rule) {
  const std::string what =
      str_cat("tensor '", tensor.name, "' ", shape_text(tensor.shape), " selected by ", rule);
  if (tensor.dtype != "F32" && tensor.dtype != "F16" && tensor.dtype != "BF16") {
    throw InputError(file, str_cat(what, " has dtype ", tensor.dtype,
                                   "; only F32, F16 and BF16 tensors can be quantized"));
  }
  if (type == ModuleType::kNone) {
    throw InputError(
        file,
        str_cat(what,
                is_bias(tensor.name) ? " is a bias; biases are never quantized"
                                     : " is not the weight of a Linear, Embedding or Conv2d layer",
                "; exclude it from the pattern"));
  }
  if (!shape_fits(tensor, type)) {
    throw InputError(
        file, str_cat(what, " does not have the shape of a ", module_type_name(type), " weight (",
                      type == ModuleType::kConv2d ? 4 : 2, " positive dimensions)"));
  }
}

void check_blocks(const std::string& file, const TensorDesc& tensor, ModuleType type, int b,
                  int64_t k, const std::string& rule) {
  const std::string what =
      str_cat("tensor '", tensor.name, "' ", shape_text(tensor.shape), " selected by ", rule);
  const int64_t row = row_length(tensor, type);
  if (row % b != 0) {
    throw InputError(
        file, str_cat(what, ": its row length ", row, " is not divisible by the block size ", b));
  }
  const int64_t subvectors = subvector_count(tensor, type, b);
  if (subvectors < k) {
    throw InputError(file, str_cat(what, ": ", k, " centroids exceed its ", subvectors,
                                   " subvectors of size ", b));
  }
}

std::vector<size_t> name_order(const std::vector<TensorDesc>& tensors) {
  std::vector<size_t> order(tensors.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return tensors[a].name < tensors[b].name; });
  return order;
}

}  // namespace detail

ModuleType classify_tensor(const TensorDesc& tensor) {
  const std::string_view name(tensor.name);
  if (name != "weight" && !name.ends_with(".weight")) return ModuleType::kNone;
  if (tensor.shape.size() == 4) return ModuleType::kConv2d;
  if (tensor.shape.size() != 2) return ModuleType::kNone;
  return name.find("embed") != std::string_view::npos ? ModuleType::kEmbedding
                                                      : ModuleType::kLinear;
}

std::string module_name(const std::string& tensor_name) {
  const std::string_view name(tensor_name);
  if (name == "weight") return "";
  if (name.ends_with(".weight")) return std::string(name.substr(0, name.size() - 7));
  return tensor_name;
}

int64_t row_length(const TensorDesc& tensor, ModuleType type) {
  PGKM_ASSERT(tensor.shape.size() >= 2, "row_length of a tensor of rank ", tensor.shape.size());
  if (type != ModuleType::kConv2d) return tensor.shape[1];
  PGKM_ASSERT(tensor.shape.size() == 4, "Conv2d weight of rank ", tensor.shape.size());
  int64_t row = 0;
  if (__builtin_mul_overflow(tensor.shape[1], tensor.shape[2], &row) ||
      __builtin_mul_overflow(row, tensor.shape[3], &row)) {
    throw InputError(tensor.name, str_cat("shape ", shape_text(tensor.shape),
                                          " overflows 64-bit element counts"));
  }
  return row;
}

namespace {

bool has_key(const std::vector<std::string>& keys, const char* key) {
  return std::find(keys.begin(), keys.end(), key) != keys.end();
}

QuantConfig::Format detect_format(const YAML::Node& root, const std::string& name) {
  if (!root.IsMap()) {
    throw InputError(name,
                     "not a quantization config: expected a mapping with "
                     "layers_to_quantize/n_centroids/block_sizes (fairseq) or pgkm: 1 "
                     "and rules: (native)");
  }
  const std::vector<std::string> keys = detail::map_keys(root, name, "the top level");
  const bool fairseq = has_key(keys, "layers_to_quantize") || has_key(keys, "n_centroids") ||
                       has_key(keys, "block_sizes");
  const bool native = has_key(keys, "pgkm") || has_key(keys, "rules");
  if (fairseq != native)
    return fairseq ? QuantConfig::Format::kFairseq : QuantConfig::Format::kNative;
  std::string found;
  for (const std::string& k : keys)
    found += (found.empty() ? "" : ", ") + k;
  throw InputError(name, str_cat(fairseq ? "mixes fairseq and native keys"
                                         : "not a quantization "
                                           "config",
                                 " (found keys: ", found.empty() ? "none" : found,
                                 "); expected layers_to_quantize/n_centroids/block_sizes "
                                 "(fairseq) or pgkm: 1 and rules: (native)"));
}

// The YAML documents in `text`, counted up to `limit`. Not YAML::LoadAll: yaml-cpp 0.7's
// LoadAll loops forever on a stray ',' at the top level (its parser keeps returning an
// empty document without consuming the token; found by fuzz_config), so the count is
// bounded and the events are dropped.
int count_documents(const std::string& text, int limit) {
  struct IgnoreEvents : YAML::EventHandler {
    void OnDocumentStart(const YAML::Mark&) override {}
    void OnDocumentEnd() override {}
    void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
    void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
    void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t,
                  const std::string&) override {}
    void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                         YAML::EmitterStyle::value) override {}
    void OnSequenceEnd() override {}
    void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                    YAML::EmitterStyle::value) override {}
    void OnMapEnd() override {}
  } ignore;
  std::istringstream in(text);
  YAML::Parser parser(in);
  int documents = 0;
  while (documents < limit && parser.HandleNextDocument(ignore))
    ++documents;
  return documents;
}

}  // namespace

QuantConfig parse_config(std::string_view text, const std::string& name) {
  QuantConfig config;
  config.path = name;
  config.text = std::string(text);
  try {
    const YAML::Node root = YAML::Load(config.text);
    if (root.IsMap() && count_documents(config.text, 2) > 1) {
      throw InputError(name,
                       "holds 2 YAML documents or more (separated by '---'); a config is "
                       "one document");
    }
    config.format = detect_format(root, name);
    if (config.format == QuantConfig::Format::kFairseq) {
      config.fairseq = detail::parse_fairseq(root, name);
    } else {
      config.native = detail::parse_native(root, name);
    }
  } catch (const YAML::Exception& e) {
    throw InputError(name, str_cat(e.mark.is_null() ? "" : str_cat("line ", e.mark.line + 1, ": "),
                                   "invalid YAML: ", e.msg));
  }
  return config;
}

QuantConfig load_config(const std::string& path) {
  // Never blocks on a FIFO and never reads /dev/zero forever: regular files only.
  return parse_config(read_regular_file(path, "config file", detail::kMaxConfigBytes), path);
}

Plan plan_layers(const QuantConfig& config, const std::vector<TensorDesc>& tensors, bool strict) {
  Plan plan = config.format == QuantConfig::Format::kFairseq
                  ? detail::plan_fairseq(config, tensors, strict)
                  : detail::plan_native(config, tensors, strict);
  // Every warning is an error in strict mode; most already threw where they arose.
  if (strict && !plan.warnings.empty()) throw InputError(config.path, plan.warnings.front());
  return plan;
}

}  // namespace pgkm::io
