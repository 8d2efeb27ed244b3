#include "engine/layer_record.h"

#include <span>
#include <sstream>
#include <type_traits>

#include "core/digest.h"
#include "core/enum_names.h"
#include "core/errors.h"

namespace pgkm {

namespace {
constexpr EnumNames<CentroidDtype, 2> kCentroidDtypeNames{
    {{{CentroidDtype::kF16, "f16"}, {CentroidDtype::kF32, "f32"}}}};
}  // namespace

const char* centroid_dtype_name(CentroidDtype t) {
  return kCentroidDtypeNames.name(t);
}

std::optional<CentroidDtype> parse_centroid_dtype(std::string_view name) {
  return kCentroidDtypeNames.parse(name);
}

namespace {

template <typename Enum>
bool assign_parsed(std::optional<Enum> parsed, Enum& out) {
  if (!parsed) return false;
  out = *parsed;
  return true;
}

}  // namespace

bool parse_field_text(std::string_view text, Algorithm& out) {
  return assign_parsed(try_parse_algorithm(text), out);
}
bool parse_field_text(std::string_view text, DType& out) {
  return assign_parsed(parse_dtype(text), out);
}
bool parse_field_text(std::string_view text, ModuleType& out) {
  return assign_parsed(parse_module_type(text), out);
}
bool parse_field_text(std::string_view text, CentroidDtype& out) {
  return assign_parsed(parse_centroid_dtype(text), out);
}

std::string settings_digest(const LayerSettings& settings) {
  LayerRecord record;
  record.settings = settings;
  std::ostringstream text;
  text << "pgkm-layer-settings-v1";
  const char* previous_label = nullptr;
  for_each_layer_field(record, [&](const FieldInfo& f, const auto& value) {
    if ((f.uses & kDigest) == 0) return;
    if (previous_label != nullptr && std::string_view(previous_label) == f.digest_label) {
      text << ',';
    } else {
      text << '|' << f.digest_label;
    }
    previous_label = f.digest_label;
    using T = std::decay_t<decltype(value)>;
    if constexpr (std::is_enum_v<T>) {
      text << field_text(value);
    } else if constexpr (std::is_arithmetic_v<T>) {
      text << value;  // bools as 0/1, floats in the stream's default format
    } else {
      PGKM_ASSERT(false, "digest field ", f.name, " is not a number or an enum");
    }
  });
  const std::string s = text.str();
  return digest_hex(digest64(std::as_bytes(std::span(s.data(), s.size()))));
}

}  // namespace pgkm
