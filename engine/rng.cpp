#include "engine/rng.h"

#include <bit>
#include <cmath>

#include "core/errors.h"

namespace pgkm {
namespace {

uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

uint64_t fnv1a(std::string_view s, uint64_t h) {
  for (unsigned char c : s) {
    h ^= c;
    h *= 0x100000001B3ull;
  }
  return h;
}

}  // namespace

Rng::Rng(uint64_t global_seed, std::string_view layer, std::string_view purpose) {
  // The 0xFF separator keeps ("ab", "c") and ("a", "bc") apart.
  uint64_t key = fnv1a(layer, 0xCBF29CE484222325ull);
  key = fnv1a(std::string_view("\xFF", 1), key);
  key = fnv1a(purpose, key);
  uint64_t state = global_seed ^ key;
  for (uint64_t& word : s_)
    word = splitmix64(state);
}

uint64_t Rng::next_u64() {
  const uint64_t result = std::rotl(s_[1] * 5, 7) * 9;
  const uint64_t t = s_[1] << 17;
  s_[2] ^= s_[0];
  s_[3] ^= s_[1];
  s_[1] ^= s_[2];
  s_[0] ^= s_[3];
  s_[2] ^= t;
  s_[3] = std::rotl(s_[3], 45);
  return result;
}

uint64_t Rng::uniform_below(uint64_t n) {
  PGKM_ASSERT(n >= 1);
  // Rejection sampling on the top of the range keeps every value equally likely.
  const uint64_t limit = UINT64_MAX - UINT64_MAX % n;
  uint64_t r;
  do {
    r = next_u64();
  } while (r >= limit);
  return r % n;
}

double Rng::normal() {
  // Two uniforms in (0, 1]; the cosine branch of Box-Muller.
  const double u1 = (static_cast<double>(next_u64() >> 11) + 1.0) * 0x1.0p-53;
  const double u2 = static_cast<double>(next_u64() >> 11) * 0x1.0p-53;
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2);
}

}  // namespace pgkm
