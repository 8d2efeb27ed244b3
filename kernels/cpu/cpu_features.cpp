#include "kernels/cpu/cpu_features.h"

namespace pgkm::cpu {

bool cpu_has_avx2_fma() {
  // __builtin_cpu_supports also accounts for OS support of the YMM state (XSAVE).
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

}  // namespace pgkm::cpu
