// Seeded randomness: every random choice in pgkm comes from a stream keyed by the
// global seed, the layer's name and a purpose, never by the rank or thread
// (docs/CONVENTIONS.md #9). Same inputs, same bits, whoever runs the layer.
#pragma once

#include <cstdint>
#include <string_view>

namespace pgkm {

class Rng {
 public:
  // A stream for (global seed, layer name, purpose), e.g. purpose "ipq-init".
  Rng(uint64_t global_seed, std::string_view layer, std::string_view purpose);

  uint64_t next_u64();                 // xoshiro256**
  uint64_t uniform_below(uint64_t n);  // uniform in [0, n), unbiased; n >= 1
  double normal();                     // standard normal (Box-Muller)

 private:
  uint64_t s_[4];
};

}  // namespace pgkm
