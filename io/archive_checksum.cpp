#include "io/archive_checksum.h"

#include <bit>
#include <cstring>
#include <type_traits>

#include "core/digest.h"
#include "core/errors.h"
#include "engine/dtype.h"
#include "io/record_json.h"

namespace pgkm::io {
namespace {

// The canonical encoding: every item is a tag, its length and its bytes, so that no two
// different contents encode alike (a name ending where a dtype begins, say).
class Encoder {
 public:
  void item(std::string_view tag, const void* data, size_t size) {
    append(tag.data(), tag.size());
    const uint64_t n = size;
    append(&n, sizeof n);
    append(data, size);
  }
  void text(std::string_view tag, std::string_view value) { item(tag, value.data(), value.size()); }
  template <typename T>
  void number(std::string_view tag, T value) {
    item(tag, &value, sizeof value);
  }
  std::string hex() const { return digest_hex(digest64(std::as_bytes(std::span(bytes_)))); }

 private:
  void append(const void* data, size_t size) {
    const auto* p = static_cast<const char*>(data);
    bytes_.insert(bytes_.end(), p, p + size);
  }
  std::vector<char> bytes_;
};

}  // namespace

std::string layer_checksum(const LayerRecord& layer) {
  Encoder e;
  for_each_layer_field(layer, [&](const FieldInfo& f, const auto& value) {
    if ((f.uses & kArchive) == 0) return;
    using T = std::decay_t<decltype(value)>;
    if constexpr (std::is_same_v<T, std::string>) {
      e.text(f.name, value);
    } else if constexpr (std::is_enum_v<T>) {
      e.text(f.name, field_text(value));
    } else if constexpr (std::is_same_v<T, bool>) {
      e.number<int64_t>(f.name, value ? 1 : 0);
    } else if constexpr (std::is_integral_v<T> && std::is_signed_v<T>) {
      e.number<int64_t>(f.name, value);
    } else if constexpr (std::is_integral_v<T>) {
      e.number<uint64_t>(f.name, value);
    } else if constexpr (std::is_floating_point_v<T>) {
      // The bits, as the attribute stores them (a double).
      e.number<uint64_t>(f.name, std::bit_cast<uint64_t>(static_cast<double>(value)));
    } else if constexpr (std::is_same_v<T, std::vector<int64_t>>) {
      e.item(f.name, value.data(), value.size() * sizeof(int64_t));
    } else if constexpr (std::is_same_v<T, std::vector<IterationStats>>) {
      e.text(f.name, iteration_stats_json(value, kArchive).dump());
    } else {
      static_assert(sizeof(T) == 0, "no checksum encoding for this field type");
    }
  });
  if (layer.settings.centroid_dtype == CentroidDtype::kF16) {
    std::vector<uint16_t> half(layer.centroids.size());
    for (size_t i = 0; i < half.size(); ++i)
      half[i] = float_to_f16(layer.centroids[i]);
    e.item("centroids:f16", half.data(), half.size() * 2);
  } else {
    e.item("centroids:f32", layer.centroids.data(), layer.centroids.size() * 4);
  }
  e.item("codes", layer.codes.data(), layer.codes.size() * sizeof(uint32_t));
  // Only a weighted layer (schema v4) has scales, so a plain layer's checksum is the one
  // schema v3 gave it.
  if (!layer.column_scales.empty()) {
    e.item("column_scales", layer.column_scales.data(), layer.column_scales.size() * 4);
  }
  return e.hex();
}

std::string kept_checksum(const KeptTensor& tensor) {
  Encoder e;
  e.text("name", tensor.name);
  e.text("dtype", tensor.dtype);
  e.item("shape", tensor.shape.data(), tensor.shape.size() * sizeof(int64_t));
  e.item("bytes", tensor.bytes.data(), tensor.bytes.size());
  return e.hex();
}

std::string source_file_checksum(const std::string& path, std::span<const uint8_t> bytes) {
  Encoder e;
  e.text("path", path);
  e.item("bytes", bytes.data(), bytes.size());
  return e.hex();
}

void write_checksum(const H5Site& site, hid_t obj, const std::string& value) {
  write_attr_string(site, obj, kChecksumAttr, value);
}

void verify_checksum(const H5Site& site, hid_t obj, const std::string& where,
                     const std::string& computed, int64_t format_version) {
  if (format_version < kFirstChecksumVersion) return;
  if (!has_attr(site, obj, kChecksumAttr, where)) {
    site.fail(str_cat(where, ": attribute 'checksum' is missing (format_version ", format_version,
                      " stores one for every object); the file is damaged"));
  }
  const std::string stored = read_attr_string(site, obj, kChecksumAttr, where);
  if (stored != computed) {
    site.fail(str_cat(where, ": checksum mismatch: stored ", stored, ", the content gives ",
                      computed, "; the file is damaged"));
  }
}

}  // namespace pgkm::io
