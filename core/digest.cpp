#include "core/digest.h"

#include <bit>
#include <cstring>

namespace pgkm {
namespace {

// Words are read little-endian; digests are stored on disk, so they must not depend on
// the host byte order.
static_assert(std::endian::native == std::endian::little, "digest64 assumes a little-endian host");

// Random odd constants with about half their bits set (odd makes multiplication a
// bijection modulo 2^64).
constexpr uint64_t kMulA = 0xbb179cfe12ac0fa5ull;
constexpr uint64_t kMulB = 0x73db38936f25e1d1ull;
constexpr uint64_t kMulC = 0x82732a24eae4ffd5ull;
constexpr uint64_t kMulD = 0x6827753b084ce45full;
constexpr uint64_t kLaneSeeds[4] = {0x7787b6685001b06full, 0x62094b1b7ac3bb2dull,
                                    0x13cb82efb482a913ull, 0x05c14d3c1ddfb403ull};

uint64_t load64(const std::byte* p) {
  uint64_t w;
  std::memcpy(&w, p, sizeof w);
  return w;
}

// One lane step, a single multiply per word so that four lanes run at multiplier
// throughput. The rotate brings the well-mixed high product bits down to where the next
// word's low bits enter.
uint64_t lane_step(uint64_t acc, uint64_t word) {
  return std::rotl((acc ^ word) * kMulA, 31);
}

// Folds a word into the serial state; used for lane results and the sub-32-byte tail.
uint64_t fold(uint64_t h, uint64_t word) {
  return std::rotl(h ^ (word * kMulB), 31) * kMulA + kMulD;
}

// Xor-shift-multiply finaliser: each output bit depends on every bit of `h`.
uint64_t avalanche(uint64_t h) {
  h ^= h >> 31;
  h *= kMulC;
  h ^= h >> 29;
  h *= kMulD;
  h ^= h >> 32;
  return h;
}

}  // namespace

uint64_t digest64(std::span<const std::byte> data) {
  const std::byte* p = data.data();
  const size_t n = data.size();
  // The length enters first so that inputs differing only by trailing zero bytes differ.
  uint64_t h = kLaneSeeds[0] ^ (static_cast<uint64_t>(n) * kMulC);
  size_t i = 0;
  if (n >= 32) {
    uint64_t a = kLaneSeeds[0], b = kLaneSeeds[1], c = kLaneSeeds[2], d = kLaneSeeds[3];
    for (; i + 32 <= n; i += 32) {
      a = lane_step(a, load64(p + i));
      b = lane_step(b, load64(p + i + 8));
      c = lane_step(c, load64(p + i + 16));
      d = lane_step(d, load64(p + i + 24));
    }
    h = fold(fold(fold(fold(h, a), b), c), d);
  }
  for (; i + 8 <= n; i += 8)
    h = fold(h, load64(p + i));
  if (i < n) {
    uint64_t w = 0;
    std::memcpy(&w, p + i, n - i);
    h = fold(h, w);
  }
  return avalanche(h);
}

std::string digest_hex(uint64_t d) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out(16, '0');
  for (int k = 15; k >= 0; --k, d >>= 4)
    out[static_cast<size_t>(k)] = kHex[d & 0xf];
  return out;
}

}  // namespace pgkm
