// Peak FMA throughput loops. This file is compiled for baseline x86-64; the SIMD loops
// carry target attributes and run only after __builtin_cpu_supports has said yes.
#include "bench/fma_peak.h"

#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <ctime>

namespace pgkm::bench {
namespace {

// Independent accumulators per thread: at least FMA latency (4) x FMA pipes (2) on
// current x86 cores, with headroom, and still fewer than the 16 architectural ymm.
constexpr int kChains = 12;
constexpr int64_t kIterations = 40'000'000;
constexpr int kRuns = 3;
volatile float benchmark_sink = 0.f;

// Each iteration issues kChains FMAs that depend only on their own previous value.
// The multiplier is just below 1 and the addend small, so values stay finite.
__attribute__((target("avx512f"))) float fma_loop_avx512(int64_t iterations, float seed) {
  __m512 acc[kChains];
  for (int i = 0; i < kChains; ++i)
    acc[i] = _mm512_set1_ps(seed + float(i));
  const __m512 mul = _mm512_set1_ps(0.999999f);
  const __m512 add = _mm512_set1_ps(1e-6f);
  for (int64_t it = 0; it < iterations; ++it) {
#pragma GCC unroll 12
    for (int i = 0; i < kChains; ++i)
      acc[i] = _mm512_fmadd_ps(acc[i], mul, add);
  }
  __m512 sum = acc[0];
  for (int i = 1; i < kChains; ++i)
    sum = _mm512_add_ps(sum, acc[i]);
  alignas(64) float lanes[16];
  _mm512_store_ps(lanes, sum);
  float total = 0.f;
  for (float v : lanes)
    total += v;
  return total;
}

__attribute__((target("avx2,fma"))) float fma_loop_avx2(int64_t iterations, float seed) {
  __m256 acc[kChains];
  for (int i = 0; i < kChains; ++i)
    acc[i] = _mm256_set1_ps(seed + float(i));
  const __m256 mul = _mm256_set1_ps(0.999999f);
  const __m256 add = _mm256_set1_ps(1e-6f);
  for (int64_t it = 0; it < iterations; ++it) {
#pragma GCC unroll 12
    for (int i = 0; i < kChains; ++i)
      acc[i] = _mm256_fmadd_ps(acc[i], mul, add);
  }
  __m256 sum = acc[0];
  for (int i = 1; i < kChains; ++i)
    sum = _mm256_add_ps(sum, acc[i]);
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, sum);
  float total = 0.f;
  for (float v : lanes)
    total += v;
  return total;
}

}  // namespace

double process_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + double(ts.tv_nsec) * 1e-9;
}

FmaPeak measure_fma_peak(int threads) {
  FmaPeak peak;
  peak.threads = threads;
  int lanes = 0;
  float (*loop)(int64_t, float) = nullptr;
  if (__builtin_cpu_supports("avx512f")) {
    peak.isa = "avx512f";
    lanes = 16;
    loop = fma_loop_avx512;
  } else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
    peak.isa = "avx2+fma";
    lanes = 8;
    loop = fma_loop_avx2;
  } else {
    peak.isa = "none";
    return peak;
  }
  const double flops = 2.0 * lanes * kChains * double(kIterations) * threads;
  for (int run = 0; run < kRuns; ++run) {
    const auto start = std::chrono::steady_clock::now();
    const double cpu_start = process_cpu_seconds();
    float total = 0.f;
#pragma omp parallel num_threads(threads) reduction(+ : total)
    total += loop(kIterations, float(omp_get_thread_num()));
    // Publishing the result keeps the loop from being optimised away.
    benchmark_sink = total;
    const std::chrono::duration<double> seconds = std::chrono::steady_clock::now() - start;
    const double cpu_seconds = process_cpu_seconds() - cpu_start;
    peak.gflops = std::max(peak.gflops, flops / seconds.count() * 1e-9);
    peak.gflops_cpu_time = std::max(peak.gflops_cpu_time, flops * threads / cpu_seconds * 1e-9);
  }
  return peak;
}

}  // namespace pgkm::bench
