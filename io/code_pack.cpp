#include "io/code_pack.h"

#include "core/errors.h"
#include "engine/size_plan.h"

namespace pgkm::io {

// A 64-bit accumulator takes whole codes (at most 32 bits) and flushes whole bytes, so
// each code is written with a handful of shifts whatever its width.
std::vector<uint8_t> pack_codes(std::span<const uint32_t> codes, int bits) {
  PGKM_ASSERT(bits >= 1 && bits <= 32, "pack_codes: bits ", bits);
  std::vector<uint8_t> out(packed_code_bytes(codes.size(), bits));
  uint64_t acc = 0;
  int filled = 0;
  size_t pos = 0;
  for (uint32_t c : codes) {
    PGKM_ASSERT(bits == 32 || c < (uint64_t{1} << bits), "pack_codes: code ", c, " has more than ",
                bits, " bits");
    acc |= static_cast<uint64_t>(c) << filled;
    filled += bits;
    while (filled >= 8) {
      out[pos++] = static_cast<uint8_t>(acc);
      acc >>= 8;
      filled -= 8;
    }
  }
  if (filled > 0) out[pos++] = static_cast<uint8_t>(acc);
  PGKM_ASSERT(pos == out.size());
  return out;
}

bool unpack_codes(std::span<const uint8_t> packed, int bits, std::span<uint32_t> out) {
  PGKM_ASSERT(bits >= 1 && bits <= 32 && packed.size() == packed_code_bytes(out.size(), bits),
              "unpack_codes: sizes");
  const uint64_t mask = (uint64_t{1} << bits) - 1;
  uint64_t acc = 0;
  int filled = 0;
  size_t pos = 0;
  for (uint32_t& c : out) {
    while (filled < bits) {
      acc |= static_cast<uint64_t>(packed[pos++]) << filled;
      filled += 8;
    }
    c = static_cast<uint32_t>(acc & mask);
    acc >>= bits;
    filled -= bits;
  }
  // What is left of the last byte is padding, and must be zero.
  return pos == packed.size() && acc == 0;
}

}  // namespace pgkm::io
