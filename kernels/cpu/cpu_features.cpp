#include "kernels/cpu/cpu_features.h"

namespace pgkm::cpu {

bool cpu_has_avx2_fma() {
  // __builtin_cpu_supports also accounts for OS support of the YMM state (XSAVE).
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

bool cpu_has_avx512() {
  // __builtin_cpu_supports checks that the OS saves the ZMM state too.
  __builtin_cpu_init();
  return cpu_has_avx2_fma() && __builtin_cpu_supports("avx512f") &&
         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
         __builtin_cpu_supports("avx512bw");
}

}  // namespace pgkm::cpu
