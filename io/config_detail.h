// Internal helpers shared by io/config.cpp, io/config_fairseq.cpp and io/config_native.cpp.
// Not part of the public API: the YAML library stays out of io/config.h.
#pragma once

#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "io/config.h"

namespace pgkm::io::detail {

// How a pattern is applied to a name.
enum class MatchMode {
  kPrefix,  // fairseq: re.match of "(module\.)?(pattern)", i.e. a match of a prefix
  kFull,    // native: the whole name
};

// 1-based line of `node`, 0 when the node carries no position.
int node_line(const YAML::Node& node);

// "line N: " or "" when the line is unknown.
std::string line_prefix(int line);

// Throws InputError(file, "line N: " + message).
[[noreturn]] void fail_at(const std::string& file, const YAML::Node& node,
                          const std::string& message);

// The text of a scalar node; throws naming `what` when it is not a scalar.
std::string scalar_text(const YAML::Node& node, const std::string& file, const std::string& what);

// A map node's keys as text (keys must be scalars); throws naming `what` when it is not a map.
std::vector<std::string> map_keys(const YAML::Node& node, const std::string& file,
                                  const std::string& what);

// Throws naming `what`, the key, its line and the allowed keys when `node` (a map) has a key
// outside `allowed`.
void check_keys(const YAML::Node& node, const std::string& file, const std::string& what,
                const std::vector<std::string>& allowed);

// A decimal integer scalar in [lo, hi]; throws naming `key`, the value and the line.
int64_t int_in_range(const YAML::Node& node, const std::string& file, const std::string& key,
                     int64_t lo, int64_t hi);

// `true` or `false`; throws naming `key`, the value and the line.
bool bool_value(const YAML::Node& node, const std::string& file, const std::string& key);

// pg | pg-base | ipq; throws naming `key`, the value and the line.
Algorithm algorithm_value(const YAML::Node& node, const std::string& file, const std::string& key);

// A pattern refused before std::regex compiles it (too long, nested too deep, not UTF-8);
// what() says why. read_pattern turns it into an InputError naming the file and line.
class PatternLimitError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Largest config file pgkm reads.
inline constexpr size_t kMaxConfigBytes = size_t{16} << 20;

// `text` compiled for `mode`; throws PatternLimitError for a pattern beyond the limits
// (checked first: std::regex recurses and a deep pattern overflows the stack), and
// std::regex_error when it does not compile.
ConfigPattern make_pattern(const std::string& text, int line, MatchMode mode);

// A regex scalar compiled for `mode`; throws naming `what`, the pattern, the line and the
// regex library's reason when it does not compile.
ConfigPattern read_pattern(const YAML::Node& node, const std::string& file, const std::string& what,
                           MatchMode mode);

// Whether `pattern` (compiled for `mode`) matches `name`. A regex that the library gives up
// on (too complex) is an InputError naming the pattern.
bool pattern_matches(const ConfigPattern& pattern, MatchMode mode, const std::string& name,
                     const std::string& file);

// The message for a pattern that matches none of `names` ("module"/"tensor" is `noun`);
// with doubled backslashes it adds the likely fix and how many names the fixed pattern
// would match.
std::string no_match_message(const ConfigPattern& pattern, MatchMode mode, const std::string& label,
                             const std::vector<std::string>& names, const std::string& noun);

// Records "file: message" as a warning, or throws it as an InputError when `strict`.
void warn_or_throw(Plan& plan, bool strict, const std::string& file, const std::string& message);

// True for a tensor whose last name component is "bias".
bool is_bias(const std::string& tensor_name);

// Checks that `tensor`, selected by `rule` as `type`, can be quantized: a float dtype and a
// quantizable type whose rank fits. Throws InputError(file, ...) naming tensor and value.
void check_quantizable(const std::string& file, const TensorDesc& tensor, ModuleType type,
                       const std::string& rule);

// Checks that block size b divides the tensor's row and that it has at least k subvectors.
// Call after check_quantizable.
void check_blocks(const std::string& file, const TensorDesc& tensor, ModuleType type, int b,
                  int64_t k, const std::string& rule);

// Indices of `tensors` in name order.
std::vector<size_t> name_order(const std::vector<TensorDesc>& tensors);

FairseqConfig parse_fairseq(const YAML::Node& root, const std::string& file);
NativeConfig parse_native(const YAML::Node& root, const std::string& file);
Plan plan_fairseq(const QuantConfig& config, const std::vector<TensorDesc>& tensors, bool strict);
Plan plan_native(const QuantConfig& config, const std::vector<TensorDesc>& tensors, bool strict);

}  // namespace pgkm::io::detail
