// Content digest of tensor bytes, used by resume to notice that a source tensor changed
// between runs. Not cryptographic: it guards against edits and corruption, not attackers.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

namespace pgkm {

// 64-bit hash of `data` (any length, any alignment). Four independent lanes consume
// 32 bytes per step so the multiplies overlap; a final avalanche spreads every input bit
// over the whole result. Changing any single 8-byte word changes the result (every step
// is a bijection in the word). Values are persisted by resume, so the function is frozen:
// tests pin known outputs.
uint64_t digest64(std::span<const std::byte> data);

// `d` as 16 lower-case hex digits, most significant first.
std::string digest_hex(uint64_t d);

}  // namespace pgkm
