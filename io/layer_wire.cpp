#include "io/layer_wire.h"

#include <bit>
#include <cstring>
#include <string_view>
#include <type_traits>

#include "core/errors.h"

namespace pgkm::io {
namespace {

constexpr char kMagic[8] = {'P', 'G', 'K', 'M', 'L', 'A', 'Y', 'R'};

// Appends little-endian values; byte order is spelled out with shifts, so the encoding
// is the same on any host.
class Writer {
 public:
  explicit Writer(size_t capacity) { out_.reserve(capacity); }

  void put_raw(const void* data, size_t size) {
    // resize + memcpy rather than insert: g++ 12 warns falsely (-Wstringop-overflow) on
    // a range insert into a reserved vector.
    if (size == 0) return;
    const size_t at = out_.size();
    out_.resize(at + size);
    std::memcpy(out_.data() + at, data, size);
  }
  template <typename T>
  void put_uint(T value) {
    for (size_t i = 0; i < sizeof(T); ++i) {
      out_.push_back(static_cast<std::byte>((value >> (8 * i)) & 0xff));
    }
  }
  void put(int64_t v) { put_uint(static_cast<uint64_t>(v)); }
  void put(int v) { put_uint(static_cast<uint32_t>(v)); }
  template <typename E>
  requires std::is_enum_v<E>
  void put(E v) { put_uint(static_cast<uint32_t>(v)); }
  void put(const IterationStats& s) {
    for_each_iteration_field(s, [&](const FieldInfo& f, const auto& v) {
      if (f.uses & kWire) put(v);
    });
  }
  void put(uint64_t v) { put_uint(v); }
  void put(uint32_t v) { put_uint(v); }
  void put(double v) { put_uint(std::bit_cast<uint64_t>(v)); }
  void put(float v) { put_uint(std::bit_cast<uint32_t>(v)); }
  void put(bool v) { out_.push_back(std::byte{v ? uint8_t{1} : uint8_t{0}}); }
  void put(const std::string& s) {
    put_uint(uint64_t{s.size()});
    put_raw(s.data(), s.size());
  }
  template <typename T>
  void put(const std::vector<T>& values) {
    put_uint(uint64_t{values.size()});
    for (const T& v : values)
      put(v);
  }

  std::vector<std::byte> take() { return std::move(out_); }

 private:
  std::vector<std::byte> out_;
};

// Reads what Writer wrote, checking every length against the bytes left; errors name
// the field being read and its byte offset.
class Reader {
 public:
  Reader(std::span<const std::byte> bytes, const std::string& context)
      : bytes_(bytes), context_(context) {}

  // The next `size` bytes, or InputError if fewer are left.
  std::span<const std::byte> take(size_t size, const char* field) {
    PGKM_EXPECTS(size <= remaining(), context_, "layer encoding truncated at byte ", offset_,
                 " reading ", field, ": needs ", size, " bytes, ", remaining(), " left");
    const auto part = bytes_.subspan(offset_, size);
    offset_ += size;
    return part;
  }
  template <typename T>
  T get_uint(const char* field) {
    const auto part = take(sizeof(T), field);
    T value = 0;
    for (size_t i = 0; i < sizeof(T); ++i) {
      value |= static_cast<T>(std::to_integer<uint8_t>(part[i])) << (8 * i);
    }
    return value;
  }
  void get(int64_t& v, const char* field) { v = static_cast<int64_t>(get_uint<uint64_t>(field)); }
  void get(int& v, const char* field) { v = static_cast<int>(get_uint<uint32_t>(field)); }
  // Enums travel as their underlying value; a value no member has is an error.
  template <typename E>
  requires std::is_enum_v<E>
  void get(E& v, const char* field) {
    const size_t at = offset_;
    v = static_cast<E>(get_uint<uint32_t>(field));
    E round_trip{};
    PGKM_EXPECTS(parse_field_text(field_text(v), round_trip) && round_trip == v, context_,
                 "layer encoding: ", field, " at byte ", at, " is not a known value");
  }
  void get(IterationStats& s, const char* field) {
    for_each_iteration_field(s, [&](const FieldInfo& f, auto& v) {
      if (f.uses & kWire) get(v, field);
    });
  }
  void get(uint64_t& v, const char* field) { v = get_uint<uint64_t>(field); }
  void get(uint32_t& v, const char* field) { v = get_uint<uint32_t>(field); }
  void get(double& v, const char* field) { v = std::bit_cast<double>(get_uint<uint64_t>(field)); }
  void get(float& v, const char* field) { v = std::bit_cast<float>(get_uint<uint32_t>(field)); }
  void get(bool& v, const char* field) {
    const size_t at = offset_;
    const uint8_t byte = get_uint<uint8_t>(field);
    PGKM_EXPECTS(byte <= 1, context_, "layer encoding: ", field, " at byte ", at,
                 " is not a bool (", int{byte}, ")");
    v = byte == 1;
  }
  void get(std::string& s, const char* field) {
    const uint64_t size = get_uint<uint64_t>(field);
    check_count(size, 1, field);
    const auto part = take(static_cast<size_t>(size), field);
    s.assign(reinterpret_cast<const char*>(part.data()), part.size());
  }
  template <typename T>
  void get(std::vector<T>& values, const char* field) {
    const uint64_t count = get_uint<uint64_t>(field);
    // Each element takes at least one byte on the wire (sizeof for plain numbers).
    check_count(count, std::is_arithmetic_v<T> ? sizeof(T) : 1, field);
    values.resize(static_cast<size_t>(count));
    for (T& v : values)
      get(v, field);
  }

  size_t offset() const { return offset_; }
  size_t remaining() const { return bytes_.size() - offset_; }

 private:
  // A count of `element_size`-byte items must fit in the bytes left; checked before
  // anything is allocated, so a garbage count cannot ask for terabytes.
  void check_count(uint64_t count, size_t element_size, const char* field) {
    PGKM_EXPECTS(count <= remaining() / element_size, context_, "layer encoding: ", field,
                 " at byte ", offset_ - sizeof(uint64_t), " claims ", count, " items of ",
                 element_size, " bytes, only ", remaining(), " bytes left");
  }

  std::span<const std::byte> bytes_;
  const std::string& context_;
  size_t offset_ = 0;
};

// Visits every field of a LayerRecord in encoding order, `f(member, "name")`: the kWire
// fields of the table in engine/layer_record.h, then the codebook and codes. Shared by
// encode and decode, so the two cannot drift apart.
template <typename Layer, typename F>
void for_each_field(Layer& l, F&& f) {
  for_each_layer_field(l, [&](const FieldInfo& info, auto& member) {
    if (info.uses & kWire) f(member, info.name);
  });
  f(l.centroids, "centroids");
  f(l.codes, "codes");
  f(l.counts, "counts");
  f(l.column_scales, "column_scales");
}

}  // namespace

std::vector<std::byte> encode_layer(const LayerRecord& layer) {
  const size_t capacity = 512 + layer.name.size() + layer.stats.stop_reason.size() +
                          64 * layer.stats.per_iteration.size() + 8 * layer.shape.size() +
                          4 * layer.centroids.size() + 4 * layer.codes.size() +
                          8 * layer.counts.size() + 4 * layer.column_scales.size();
  Writer writer(capacity);
  writer.put_raw(kMagic, sizeof(kMagic));
  writer.put(kLayerWireVersion);
  for_each_field(layer, [&](const auto& member, const char*) { writer.put(member); });
  return writer.take();
}

LayerRecord decode_layer(std::span<const std::byte> bytes, const std::string& context) {
  Reader reader(bytes, context);
  const auto magic = reader.take(sizeof(kMagic), "magic");
  PGKM_EXPECTS(std::memcmp(magic.data(), kMagic, sizeof(kMagic)) == 0, context,
               "not a pgkm layer encoding (bad magic)");
  const auto version = reader.get_uint<uint32_t>("version");
  PGKM_EXPECTS(version == kLayerWireVersion, context, "layer encoding version ", version,
               " is not supported (this pgkm reads version ", kLayerWireVersion, ")");
  LayerRecord layer;
  for_each_field(layer, [&](auto& member, const char* field) { reader.get(member, field); });
  PGKM_EXPECTS(reader.remaining() == 0, context, "layer encoding has ", reader.remaining(),
               " bytes left over after the last field (byte ", reader.offset(), ")");
  return layer;
}

}  // namespace pgkm::io
