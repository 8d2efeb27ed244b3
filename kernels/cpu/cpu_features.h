// Run-time CPU feature detection for the CPU backend's kernel dispatch.
#pragma once

namespace pgkm::cpu {

// True when the CPU (and OS) support AVX2 and FMA, so assign_tiles_avx2 may run.
bool cpu_has_avx2_fma();

}  // namespace pgkm::cpu
