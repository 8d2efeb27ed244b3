// Codes packed at ceil(log2 K) bits (archive schema v2, docs/ARCHIVE.md): code i occupies
// bits [i * bits, (i + 1) * bits) of the byte stream, least significant bit first (byte
// j holds stream bits 8j..8j+7, bit 0 of the code first): numpy's
// unpackbits(..., bitorder="little") reads it back. The last byte's unused high bits are 0.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace pgkm::io {

// Packs `codes` (each < 2^bits, 1 <= bits <= 32) into packed_code_bytes(n, bits) bytes.
std::vector<uint8_t> pack_codes(std::span<const uint32_t> codes, int bits);

// Unpacks `n` codes of `bits` bits from `packed`, which must hold exactly
// packed_code_bytes(n, bits) bytes. Returns false (and leaves `out` unspecified) when a
// padding bit of the last byte is set.
bool unpack_codes(std::span<const uint8_t> packed, int bits, std::span<uint32_t> out);

}  // namespace pgkm::io
