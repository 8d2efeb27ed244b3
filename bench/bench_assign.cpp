// Assignment (and accumulation) throughput of the CPU backend on the RoBERTa shapes,
// as GFLOPS (2*N*K*b per pass) and as a fraction of this machine's measured FMA peak.
//
//   bench_assign --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>
#include <omp.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <map>
#include <memory>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "bench/fma_peak.h"
#include "kernels/backend.h"
#include "kernels/fixed_point.h"

namespace {

using pgkm::Backend;
using pgkm::ResidentPoints;

struct Shape {
  const char* name;
  int64_t n;  // points (sub-vectors) in the layer
  int dim;    // block size b
  int k;      // centroids
};

constexpr Shape kShapes[] = {
    {"attention", 147456, 4, 3072},
    {"fc", 294912, 8, 3072},
    {"embedding", 2412720, 16, 768},
};

// Scalar kernels are ~20x slower; a slice of the points keeps the run short and the
// rate comparable.
constexpr int64_t kScalarSubset = 16;

pgkm::bench::FmaPeak g_peak;
int g_threads = 1;

std::vector<float> random_normal(size_t count, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.f, 0.02f);
  std::vector<float> out(count);
  for (float& v : out)
    v = normal(rng);
  return out;
}

// A shape's data, made once and shared by every benchmark of that shape.
struct Workload {
  std::vector<float> points;
  std::vector<uint32_t> weights;
  std::vector<float> centroids;
};

const Workload& workload(const Shape& shape) {
  static std::map<std::string, Workload> cache;
  auto [it, inserted] = cache.try_emplace(shape.name);
  if (inserted) {
    it->second.points = random_normal(size_t(shape.n) * shape.dim, 1u);
    it->second.weights.assign(size_t(shape.n), 1);
    it->second.centroids = random_normal(size_t(shape.k) * shape.dim, 2u);
  }
  return it->second;
}

// Wall time and process CPU time of the timed passes only.
struct Timing {
  double wall_seconds = 0.0;
  double cpu_seconds = 0.0;
};

// GFLOPS and peak_fraction from wall time (OpenMP threads make the main thread's CPU
// time meaningless). The _cpu variants use process CPU time instead, threads x flops /
// CPU seconds: on a machine shared with other jobs they show the rate while running.
void set_flop_counters(benchmark::State& state, double flops_per_pass, const Timing& t) {
  const double flops = flops_per_pass * double(state.iterations());
  const double gflops = flops / t.wall_seconds * 1e-9;
  const double gflops_cpu = flops * g_threads / t.cpu_seconds * 1e-9;
  state.counters["GFLOPS"] = gflops;
  state.counters["GFLOPS_cpu"] = gflops_cpu;
  if (g_peak.gflops > 0.0) {
    state.counters["peak_fraction"] = gflops / g_peak.gflops;
    state.counters["peak_fraction_cpu"] = gflops_cpu / g_peak.gflops_cpu_time;
    state.counters["peak_GFLOPS"] = g_peak.gflops;
  }
}

void bm_assign(benchmark::State& state, Shape shape, bool scalar) {
  if (scalar) shape.n /= kScalarSubset;
  const Workload& w = workload(shape);
  auto backend = pgkm::make_cpu_backend({0, scalar});
  const std::span<const float> points(w.points.data(), size_t(shape.n) * shape.dim);
  const std::span<const uint32_t> weights(w.weights.data(), size_t(shape.n));
  const auto resident = backend->upload(points, weights, shape.dim);
  std::vector<uint32_t> codes(size_t(shape.n));
  std::vector<float> dist(size_t(shape.n));
  Timing timing;
  for (auto _ : state) {
    const auto start = std::chrono::steady_clock::now();
    const double cpu_start = pgkm::bench::process_cpu_seconds();
    backend->assign(*resident, w.centroids, codes, dist);
    timing.cpu_seconds += pgkm::bench::process_cpu_seconds() - cpu_start;
    timing.wall_seconds +=
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    benchmark::DoNotOptimize(codes.data());
    benchmark::ClobberMemory();
  }
  set_flop_counters(state, 2.0 * double(shape.n) * shape.k * shape.dim, timing);
  state.SetLabel(backend->name());
}

void bm_accumulate(benchmark::State& state, Shape shape) {
  const Workload& w = workload(shape);
  auto backend = pgkm::make_cpu_backend({});
  const auto resident = backend->upload(w.points, w.weights, shape.dim);
  std::mt19937 rng(3u);
  std::uniform_int_distribution<uint32_t> code(0, uint32_t(shape.k) - 1);
  std::vector<uint32_t> codes(size_t(shape.n));
  for (uint32_t& c : codes)
    c = code(rng);
  const auto fp = pgkm::FixedPoint::for_data(0.2, uint64_t(shape.n));
  std::vector<int64_t> sums(size_t(shape.k) * shape.dim);
  std::vector<uint64_t> counts(size_t(shape.k));
  for (auto _ : state) {
    backend->accumulate(*resident, codes, fp, sums, counts);
    benchmark::DoNotOptimize(sums.data());
    benchmark::ClobberMemory();
  }
  state.counters["Gpoints_per_s"] =
      benchmark::Counter(double(shape.n) * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

void register_benchmarks() {
  for (const Shape& shape : kShapes) {
    benchmark::RegisterBenchmark((std::string("assign/") + shape.name).c_str(), bm_assign, shape,
                                 false)
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime();
  }
  benchmark::RegisterBenchmark("assign_scalar/attention_1_16th", bm_assign, kShapes[0], true)
      ->Unit(benchmark::kMillisecond)
      ->UseRealTime();
  benchmark::RegisterBenchmark("accumulate/embedding", bm_accumulate, kShapes[2])
      ->Unit(benchmark::kMillisecond)
      ->UseRealTime();
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  g_threads = omp_get_max_threads();
  g_peak = pgkm::bench::measure_fma_peak(g_threads);
  std::printf("fma_peak: %.1f GFLOPS (%.1f by CPU time; %s, %d threads)\n", g_peak.gflops,
              g_peak.gflops_cpu_time, g_peak.isa.c_str(), g_peak.threads);
  benchmark::AddCustomContext("fma_peak_gflops", std::to_string(g_peak.gflops));
  benchmark::AddCustomContext("fma_peak_gflops_cpu_time", std::to_string(g_peak.gflops_cpu_time));
  benchmark::AddCustomContext("fma_peak_isa", g_peak.isa);
  benchmark::AddCustomContext("threads", std::to_string(g_threads));
  register_benchmarks();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
