// Run-time CPU feature detection for the CPU backend's kernel dispatch.
#pragma once

namespace pgkm::cpu {

// True when the CPU (and OS) support AVX2 and FMA, so assign_tiles_avx2 may run.
bool cpu_has_avx2_fma();

// True when the CPU (and OS) support AVX-512 F, VL, DQ and BW as well as AVX2 and FMA,
// so the AVX-512 kernels may run.
bool cpu_has_avx512();

}  // namespace pgkm::cpu
