// Assignment (and accumulation) throughput of the CPU backend on the RoBERTa shapes,
// as GFLOPS (2*N*K*b per pass) and as a fraction of this machine's measured FMA peak;
// the exact candidate search (assign_pruned) against brute force mid-run on the paper's
// shapes and a LLaMA-shaped layer; AVX-512 against AVX2 kernels.
//
//   bench_assign --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
//
// The measured FMA peak goes to stderr and into the benchmark context, so
// --benchmark_format=json prints JSON only on stdout.
#include <benchmark/benchmark.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <functional>
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

// The pruned search's shapes: the paper's three and a 4096x4096 LLaMA weight at b=8.
constexpr Shape kPrunedShapes[] = {
    kShapes[0],
    kShapes[1],
    kShapes[2],
    {"llama_4096x4096", 2097152, 8, 4096},
};

// Lloyd iterations run before a pruned benchmark measures: centroids and previous
// codes as in the middle of a k-means run.
constexpr int kWarmupIterations = 4;

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

// Like trained weights: N(0, 0.02^2) with 0.1% of the values scaled by U(5, 10).
std::vector<float> weight_like(size_t count, uint32_t seed) {
  std::vector<float> out = random_normal(count, seed);
  std::mt19937 rng(seed + 1);
  std::uniform_real_distribution<float> scale(5.f, 10.f);
  std::uniform_int_distribution<size_t> where(0, count - 1);
  for (size_t i = 0; i < count / 1000; ++i)
    out[where(rng)] *= scale(rng);
  return out;
}

// A layer in the middle of k-means: centroids after kWarmupIterations Lloyd steps from
// points drawn at random, and the codes that produced them (the next pass's previous).
struct MidRun {
  std::vector<float> points;
  std::vector<uint32_t> weights;
  std::vector<float> centroids;
  std::vector<uint32_t> previous;
};

const MidRun& mid_run(const Shape& shape) {
  static std::map<std::string, MidRun> cache;
  auto [it, inserted] = cache.try_emplace(shape.name);
  MidRun& m = it->second;
  if (!inserted) return m;
  const size_t n = size_t(shape.n);
  const size_t dim = size_t(shape.dim);
  m.points = weight_like(n * dim, 11u);
  m.weights.assign(n, 1);
  std::mt19937 rng(12u);
  std::uniform_int_distribution<size_t> pick(0, n - 1);
  m.centroids.resize(size_t(shape.k) * dim);
  for (size_t j = 0; j < size_t(shape.k); ++j) {
    const size_t p = pick(rng);
    std::copy_n(m.points.begin() + p * dim, dim, m.centroids.begin() + j * dim);
  }
  auto backend = pgkm::make_cpu_backend({0, false, pgkm::CpuIsa::kAvx512});
  const auto resident = backend->upload(m.points, m.weights, shape.dim);
  const auto fp = pgkm::FixedPoint::for_data(1.0, n);
  std::vector<uint32_t> codes(n, 0);
  std::vector<float> dist(n);
  std::vector<int64_t> sums(m.centroids.size());
  std::vector<uint64_t> counts(size_t(shape.k));
  pgkm::SearchStats stats;
  for (int it = 0; it < kWarmupIterations; ++it) {
    // Bit-identical to brute force, and faster after the first pass.
    backend->assign_accumulate_pruned(*resident, m.centroids, codes, fp, codes, dist, sums, counts,
                                      stats);
    for (size_t j = 0; j < size_t(shape.k); ++j) {
      if (counts[j] == 0) continue;
      for (size_t d = 0; d < dim; ++d)
        m.centroids[j * dim + d] = fp.mean(sums[j * dim + d], counts[j]);
    }
  }
  m.previous = codes;
  return m;
}

double seconds_of(const std::function<void()>& pass) {
  const auto start = std::chrono::steady_clock::now();
  pass();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// Pruned against brute force on the same backend (the widest kernels the CPU has),
// interleaved pass by pass so that both see the same machine load: milliseconds per
// pass of each, their ratio, and the fraction of the n*k centroid scores the pruned pass
// computed.
void bm_pruned_vs_brute(benchmark::State& state, Shape shape, pgkm::CpuIsa isa) {
  const MidRun& m = mid_run(shape);
  auto backend = pgkm::make_cpu_backend({0, false, isa});
  const auto resident = backend->upload(m.points, m.weights, shape.dim);
  std::vector<uint32_t> codes(size_t(shape.n));
  std::vector<float> dist(size_t(shape.n));
  pgkm::SearchStats stats;
  double brute_s = 0.0;
  double pruned_s = 0.0;
  bool brute_first = true;  // alternated, so that neither pass always follows the other
  for (auto _ : state) {
    for (bool brute : {brute_first, !brute_first}) {
      if (brute) {
        brute_s += seconds_of([&] { backend->assign(*resident, m.centroids, codes, dist); });
      } else {
        pruned_s += seconds_of([&] {
          backend->assign_pruned(*resident, m.centroids, m.previous, codes, dist, stats);
        });
      }
    }
    brute_first = !brute_first;
    benchmark::DoNotOptimize(codes.data());
    benchmark::ClobberMemory();
  }
  const double passes = double(state.iterations());
  state.counters["brute_ms"] = brute_s / passes * 1e3;
  state.counters["pruned_ms"] = pruned_s / passes * 1e3;
  state.counters["speedup"] = brute_s / pruned_s;
  state.counters["scored_fraction"] = stats.scored_fraction();
  state.counters["brute_forced_points"] = double(stats.brute_force) / double(stats.points);
  state.SetLabel(backend->name());
}

// The AVX-512 kernels against the AVX2 ones, interleaved: brute force or pruned.
void bm_avx512_vs_avx2(benchmark::State& state, Shape shape, bool pruned) {
  const MidRun& m = mid_run(shape);
  auto avx2 = pgkm::make_cpu_backend({0, false, pgkm::CpuIsa::kAvx2});
  auto avx512 = pgkm::make_cpu_backend({0, false, pgkm::CpuIsa::kAvx512});
  if (avx512->name() != "cpu-avx512") {
    state.SkipWithError("this CPU has no AVX-512");
    return;
  }
  const auto resident2 = avx2->upload(m.points, m.weights, shape.dim);
  const auto resident512 = avx512->upload(m.points, m.weights, shape.dim);
  std::vector<uint32_t> codes(size_t(shape.n));
  std::vector<float> dist(size_t(shape.n));
  pgkm::SearchStats stats;
  auto pass = [&](Backend& b, const ResidentPoints& r) {
    if (pruned) {
      b.assign_pruned(r, m.centroids, m.previous, codes, dist, stats);
    } else {
      b.assign(r, m.centroids, codes, dist);
    }
  };
  double avx2_s = 0.0;
  double avx512_s = 0.0;
  bool avx2_first = true;  // alternated, so that neither pass always follows the other
  for (auto _ : state) {
    for (bool use_avx2 : {avx2_first, !avx2_first}) {
      if (use_avx2) {
        avx2_s += seconds_of([&] { pass(*avx2, *resident2); });
      } else {
        avx512_s += seconds_of([&] { pass(*avx512, *resident512); });
      }
    }
    avx2_first = !avx2_first;
    benchmark::DoNotOptimize(codes.data());
    benchmark::ClobberMemory();
  }
  const double passes = double(state.iterations());
  state.counters["avx2_ms"] = avx2_s / passes * 1e3;
  state.counters["avx512_ms"] = avx512_s / passes * 1e3;
  state.counters["speedup"] = avx2_s / avx512_s;
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
  // Passes of a second or more: a few iterations (an even number: each order of the two
  // passes equally often), repetitions from the command line.
  for (const Shape& shape : kPrunedShapes) {
    benchmark::RegisterBenchmark((std::string("pruned_vs_brute/") + shape.name).c_str(),
                                 bm_pruned_vs_brute, shape, pgkm::CpuIsa::kAvx512)
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime()
        ->Iterations(4);
  }
  for (const Shape& shape : kPrunedShapes) {
    for (bool pruned : {false, true}) {
      const std::string name =
          std::string(pruned ? "avx512_vs_avx2_pruned/" : "avx512_vs_avx2/") + shape.name;
      benchmark::RegisterBenchmark(name.c_str(), bm_avx512_vs_avx2, shape, pruned)
          ->Unit(benchmark::kMillisecond)
          ->UseRealTime()
          ->Iterations(4);
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  g_threads = omp_get_max_threads();
  g_peak = pgkm::bench::measure_fma_peak(g_threads);
  std::fprintf(stderr, "fma_peak: %.1f GFLOPS (%.1f by CPU time; %s, %d threads)\n", g_peak.gflops,
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
