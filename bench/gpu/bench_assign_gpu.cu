// Assignment throughput of the CUDA backend as a fraction of the FP32 FMA peak measured
// on the same GPU, for the paper's three RoBERTa shapes and a large layer; and, per
// shape, the codes of a sample of points against the CPU backend (bit for bit).
//
//   bench_assign_gpu [--reps R] [--shape I]
//
// A pass is CudaBackend::assign_resident (codes only) on resident points and centroids,
// timed with CUDA events on the backend's stream; "fused" adds the fixed-point sums.
// The work is n * K * b FMAs per pass.
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "core/gpu_check.h"
#include "kernels/cuda/assign_plan.h"
#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/kernels.h"

namespace {

using pgkm::CudaBackend;

__global__ void fma_peak_kernel(float* out, int iterations, float a, float b) {
  float r[8];
#pragma unroll
  for (int j = 0; j < 8; ++j)
    r[j] = static_cast<float>(threadIdx.x + j);
  for (int i = 0; i < iterations; ++i) {
#pragma unroll
    for (int j = 0; j < 8; ++j)
      r[j] = fmaf(r[j], a, b);
  }
  float s = 0.f;
#pragma unroll
  for (int j = 0; j < 8; ++j)
    s += r[j];
  out[blockIdx.x * blockDim.x + threadIdx.x] = s;
}

// FMA/s of independent fmaf chains filling every SM: the ceiling for the assignment.
double measure_fma_peak() {
  cudaDeviceProp prop{};
  PGKM_CUDA_TRY(cudaGetDeviceProperties(&prop, 0));
  const int threads = 256;
  const int blocks = prop.multiProcessorCount * 8;
  const int iterations = 1 << 16;
  float* out = nullptr;
  PGKM_CUDA_TRY(cudaMalloc(&out, sizeof(float) * blocks * threads));
  cudaEvent_t start, stop;
  PGKM_CUDA_TRY(cudaEventCreate(&start));
  PGKM_CUDA_TRY(cudaEventCreate(&stop));
  double best = 0;
  for (int rep = 0; rep < 4; ++rep) {  // the first one also warms the clocks up
    PGKM_CUDA_TRY(cudaEventRecord(start));
    fma_peak_kernel<<<blocks, threads>>>(out, iterations, 0.999999f, 1e-7f);
    PGKM_CUDA_TRY(cudaEventRecord(stop));
    PGKM_CUDA_TRY(cudaEventSynchronize(stop));
    float ms = 0;
    PGKM_CUDA_TRY(cudaEventElapsedTime(&ms, start, stop));
    const double fmas = static_cast<double>(blocks) * threads * iterations * 8;
    if (rep > 0) best = std::max(best, fmas / (ms * 1e-3));
  }
  PGKM_CUDA_TRY(cudaFree(out));
  int clock_khz = 0;
  PGKM_CUDA_TRY(cudaDeviceGetAttribute(&clock_khz, cudaDevAttrClockRate, 0));
  // 128 FP32 lanes per Hopper SM, one FMA each per clock.
  const double nominal = 128.0 * prop.multiProcessorCount * clock_khz * 1e3;
  std::printf("device: %s, %d SMs, max clock %.0f MHz, nominal %.2f TFMA/s\n", prop.name,
              prop.multiProcessorCount, clock_khz / 1e3, nominal / 1e12);
  std::printf("measured FP32 peak: %.2f TFMA/s = %.1f TFLOP/s\n", best / 1e12, 2 * best / 1e12);
  return best;
}

std::vector<float> normal(int64_t count, float stddev, uint32_t seed) {
  std::mt19937 gen(seed);
  std::normal_distribution<float> dist(0.f, stddev);
  std::vector<float> v(static_cast<size_t>(count));
  for (float& x : v)
    x = dist(gen);
  return v;
}

struct Shape {
  const char* name;
  int64_t n;
  int b;
  int64_t k;
};

// Milliseconds per pass over `reps` passes queued back to back.
double time_passes(CudaBackend& gpu, const pgkm::ResidentPoints& points, const pgkm::FixedPoint* fp,
                   int reps) {
  auto* stream = static_cast<cudaStream_t>(gpu.stream().stream);
  cudaEvent_t start, stop;
  PGKM_CUDA_TRY(cudaEventCreate(&start));
  PGKM_CUDA_TRY(cudaEventCreate(&stop));
  gpu.assign_resident(points, fp);  // warm-up
  PGKM_CUDA_TRY(cudaEventRecord(start, stream));
  for (int r = 0; r < reps; ++r)
    gpu.assign_resident(points, fp);
  PGKM_CUDA_TRY(cudaEventRecord(stop, stream));
  PGKM_CUDA_TRY(cudaEventSynchronize(stop));
  float ms = 0;
  PGKM_CUDA_TRY(cudaEventElapsedTime(&ms, start, stop));
  PGKM_CUDA_TRY(cudaEventDestroy(start));
  PGKM_CUDA_TRY(cudaEventDestroy(stop));
  return ms / reps;
}

// Codes of the first `sample` points on the CPU backend against the GPU's.
int64_t sample_mismatches(const std::vector<float>& x, const std::vector<float>& c, int b,
                          const std::vector<uint32_t>& gpu_codes, int64_t sample) {
  auto cpu = pgkm::make_cpu_backend();
  const std::vector<float> xs(x.begin(), x.begin() + sample * b);
  const std::vector<uint32_t> ws(static_cast<size_t>(sample), 1);
  auto points = cpu->upload(xs, ws, b);
  std::vector<uint32_t> codes(static_cast<size_t>(sample));
  std::vector<float> dist(static_cast<size_t>(sample));
  cpu->assign(*points, c, codes, dist);
  int64_t bad = 0;
  for (int64_t i = 0; i < sample; ++i)
    bad += codes[i] != gpu_codes[i];
  return bad;
}

}  // namespace

int main(int argc, char** argv) {
  int reps = 3;
  int only = -1;  // --shape I: that shape alone (for a profiler)
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::strcmp(argv[i], "--reps") == 0) reps = std::max(1, std::atoi(argv[i + 1]));
    if (std::strcmp(argv[i], "--shape") == 0) only = std::atoi(argv[i + 1]);
  }
  try {
    const double peak = measure_fma_peak();
    auto backend = pgkm::make_cuda_backend(0);
    auto* gpu = dynamic_cast<CudaBackend*>(backend.get());
    cudaDeviceProp prop{};
    PGKM_CUDA_TRY(cudaGetDeviceProperties(&prop, 0));
    const Shape shapes[] = {{"roberta linear b=4", 147456, 4, 3072},
                            {"roberta linear b=8", 294912, 8, 3072},
                            {"roberta embedding b=16", 2412720, 16, 768},
                            {"large layer b=8", 5600000, 8, 65536}};
    std::printf("%-24s %9s %3s %6s %6s %6s %10s %9s %9s %10s %9s %s\n", "shape", "n", "b", "K",
                "blk/SM", "splits", "ms/pass", "TFMA/s", "of peak", "fused ms", "of peak",
                "sample");
    for (int index = 0; index < 4; ++index) {
      const Shape& s = shapes[index];
      if (only >= 0 && index != only) continue;
      const auto x = normal(s.n * s.b, 0.02f, 1);
      const auto c = normal(s.k * s.b, 0.02f, 2);
      const std::vector<uint32_t> w(static_cast<size_t>(s.n), 1);
      auto points = gpu->upload(x, w, s.b);
      gpu->set_centroids(c, s.b);
      const pgkm::FixedPoint fp = pgkm::FixedPoint::for_data(0.2, static_cast<uint64_t>(s.n));
      const double ms = time_passes(*gpu, *points, nullptr, reps);
      const double fused_ms = time_passes(*gpu, *points, &fp, reps);
      gpu->assign_resident(*points, nullptr);
      std::vector<uint32_t> codes(static_cast<size_t>(s.n));
      pgkm::CudaDownload out;
      out.codes = codes;
      gpu->download(out);
      const int64_t sample = std::min<int64_t>(s.n, 4096);
      const int64_t bad = sample_mismatches(x, c, s.b, codes, sample);
      const auto plan = pgkm::cuda::plan_assign(s.n, s.k, s.b, prop.multiProcessorCount);
      const double fmas = static_cast<double>(s.n) * static_cast<double>(s.k) * s.b;
      const double rate = fmas / (ms * 1e-3);
      const double fused_rate = fmas / (fused_ms * 1e-3);
      std::printf("%-24s %9lld %3d %6lld %6d %6d %10.3f %9.2f %9.3f %10.3f %9.3f %lld/%lld %s\n",
                  s.name, static_cast<long long>(s.n), s.b, static_cast<long long>(s.k),
                  pgkm::cuda::assign_blocks_per_sm(s.b), plan.splits, ms, rate / 1e12, rate / peak,
                  fused_ms, fused_rate / peak, static_cast<long long>(sample - bad),
                  static_cast<long long>(sample),
                  bad == 0 ? "codes equal the CPU's" : "CODES DIFFER FROM THE CPU'S");
      if (bad != 0) return 1;
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_assign_gpu: %s\n", e.what());
    return 1;
  }
  return 0;
}
