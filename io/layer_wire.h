// A finished layer as bytes, to send it from the rank that ran it to rank 0.
//
// Encoding (version 2), little-endian, no padding:
//   magic "PGKMLAYR" (8 bytes), version uint32
//   then the kWire fields of engine/layer_record.h's table in table order, then centroids,
//   codes and counts:
//     string          uint64 byte length, then the bytes
//     int64 / uint64  8 bytes;  double: its IEEE-754 bits as uint64
//     int, enum       4 bytes (an enum as its underlying value)
//     float           its IEEE-754 bits as uint32
//     bool            1 byte, 0 or 1
//     vector<T>       uint64 element count, then the elements (an IterationStats: its
//                     kWire fields in table order)
//   nothing after the last field.
// The decoder trusts nothing: every length is checked against the bytes left.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "io/archive.h"

namespace pgkm::io {

// The encoding's version; decode_layer reads only this one.
inline constexpr uint32_t kLayerWireVersion = 3;  // 3: column_scales

// Encodes every field of `layer` (format above).
std::vector<std::byte> encode_layer(const LayerRecord& layer);

// Decodes bytes from encode_layer. Throws InputError(context, ...) naming the field and
// byte offset if the magic or version is wrong, a length runs past the end, a bool is
// not 0 or 1, or bytes are left over. Never reads outside `bytes`. Checks only the
// encoding: the layer's consistency (sizes, codes < K) is ArchiveWriter's to check.
LayerRecord decode_layer(std::span<const std::byte> bytes, const std::string& context);

}  // namespace pgkm::io
