// Measured peak floating-point throughput of this machine, the denominator of the
// benchmarks' peak_fraction counters.
#pragma once

#include <string>

namespace pgkm::bench {

struct FmaPeak {
  double gflops = 0.0;  // best of a few timed runs, all threads together
  // The same rate from process CPU time (threads x flops / CPU seconds): what the
  // threads reach while they actually run, when other processes share the cores.
  double gflops_cpu_time = 0.0;
  std::string isa;  // "avx512f", "avx2+fma" or "scalar" (what the loop used)
  int threads = 0;
};

// Times a loop of independent fused multiply-adds in the widest vector registers the
// CPU supports, on `threads` OpenMP threads at once, and counts 2 flops per lane.
FmaPeak measure_fma_peak(int threads);

// CPU time of the whole process (all threads) in seconds.
double process_cpu_seconds();

}  // namespace pgkm::bench
