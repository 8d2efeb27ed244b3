// bench_setup: wall time of each set-up phase of one layer (everything run_kmeans and
// quantize_layer do before the first Lloyd iteration), at several thread counts in
// the same run, with a check that every thread count produced the same bits.
//
//   bench_setup [--shape embed,fc] [--threads 1,2] [--repeats 5] [--dtype F32|F16|BF16]
//
// Shapes (configs/roberta_base.yaml): "embed" is RoBERTa's word embedding [50265, 768]
// at b=16, K=768 (2,412,720 subvectors); "fc" is a [3072, 768] linear weight at b=4,
// K=3072 (589,824 subvectors); "llama" (not run by default) is a LLaMA-7B attention
// projection [4096, 4096] at b=8, K=256 (2,097,152 subvectors). The weights are made here the way
// bench/make_roberta_model.py makes them: normal(0, 0.02) with 0.1% of the entries
// scaled by 5..10 (outliers) and, for the embedding, a zero padding row.
//
// Phases, in pipeline order, each fed the previous phase's output:
//   extract    extract_subvectors: finiteness check, dtype conversion, PQ layout
//   dedup      deduplicate
//   scale      max_abs + total_weight (the fixed-point scale)
//   dwc        consolidate_dense_weights (algorithm pg)
//   partition  partition_guided over all consolidated points (pre-assignment)
// Reported per phase and thread count: the median over repeats (seconds), and the
// ratio of the first thread count's median to each other's (the speed-up); then
// the median CPU time / wall time of a whole run ("cores used"), which shows
// whether the threads had cores to run on.
// Repeats interleave thread counts, so load from other users hits all of them alike.
#include <omp.h>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "engine/dtype.h"
#include "engine/dwc.h"
#include "engine/layout.h"
#include "engine/pg_partition.h"
#include "engine/points.h"

namespace {

using Clock = std::chrono::steady_clock;

struct Shape {
  std::string name;
  int64_t rows;
  int64_t cols;
  int block_size;
  int64_t k;
  bool padding_row;
};

const Shape kShapes[] = {
    {"embed", 50265, 768, 16, 768, true},
    {"fc", 3072, 768, 4, 3072, false},
    {"llama", 4096, 4096, 8, 256, false},
};

const char* kPhases[] = {"extract", "dedup", "scale", "dwc", "partition"};
constexpr int kPhaseCount = 5;

[[noreturn]] void usage(const std::string& msg) {
  std::fprintf(stderr,
               "bench_setup: %s\nusage: bench_setup [--shape embed,fc,llama] [--threads 1,2] "
               "[--repeats 5] [--dtype F32|F16|BF16]\n",
               msg.c_str());
  std::exit(2);
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t m = v.size() / 2;
  return v.size() % 2 ? v[m] : 0.5 * (v[m - 1] + v[m]);
}

// The tensor's bytes as a model file would hold them.
std::vector<std::byte> make_weight(const Shape& s, pgkm::DType dtype) {
  const auto n = static_cast<size_t>(s.rows * s.cols);
  std::vector<float> w(n);
  std::mt19937_64 gen(42);
  std::normal_distribution<float> normal(0.f, 0.02f);
  for (float& v : w)
    v = normal(gen);
  std::uniform_int_distribution<size_t> where(0, n - 1);
  std::uniform_real_distribution<float> factor(5.f, 10.f);
  for (size_t i = 0; i < std::max<size_t>(1, n / 1000); ++i)
    w[where(gen)] *= factor(gen);
  if (s.padding_row) std::fill_n(w.begin() + s.cols, s.cols, 0.f);
  std::vector<std::byte> bytes(n * pgkm::dtype_size(dtype));
  for (size_t i = 0; i < n; ++i) {
    if (dtype == pgkm::DType::F32) {
      std::memcpy(bytes.data() + 4 * i, &w[i], 4);
    } else {
      const uint16_t h =
          dtype == pgkm::DType::F16 ? pgkm::float_to_f16(w[i]) : pgkm::float_to_bf16(w[i]);
      std::memcpy(bytes.data() + 2 * i, &h, 2);
    }
  }
  return bytes;
}

// FNV-1a over raw bytes: a fingerprint of a phase's output for the equality check.
template <typename T>
uint64_t fingerprint(const std::vector<T>& v, uint64_t h = 0xCBF29CE484222325ull) {
  const auto* p = reinterpret_cast<const unsigned char*>(v.data());
  for (size_t i = 0; i < v.size() * sizeof(T); ++i) {
    h ^= p[i];
    h *= 0x100000001B3ull;
  }
  return h;
}

// CPU seconds (user + system) this process has used so far, all threads.
double cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         1e-6 * static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec);
}

struct Run {
  double seconds[kPhaseCount] = {};
  double cores = 0;  // CPU seconds / wall seconds over the whole run
  uint64_t digest = 0;
  int64_t distinct = 0;
  int64_t consolidated = 0;
};

double since(Clock::time_point& t) {
  const auto now = Clock::now();
  const double s = std::chrono::duration<double>(now - t).count();
  t = now;
  return s;
}

Run run_once(const Shape& s, const pgkm::WeightView& view) {
  Run r;
  const double cpu_start = cpu_seconds();
  const auto start = Clock::now();
  auto t = start;
  const pgkm::BlockLayout layout = pgkm::make_block_layout(view.name, view.shape, s.block_size);
  const std::vector<float> vectors = pgkm::extract_subvectors(view, layout);
  r.seconds[0] = since(t);
  const pgkm::Deduplicated distinct = pgkm::deduplicate(vectors, s.block_size);
  r.seconds[1] = since(t);
  const pgkm::FixedPoint fp =
      pgkm::FixedPoint::for_data(distinct.points.max_abs(), distinct.points.total_weight());
  r.seconds[2] = since(t);
  const pgkm::DwcResult dwc =
      pgkm::consolidate_dense_weights(distinct.points, s.k, pgkm::DwcParams{}, fp, s.name);
  r.seconds[3] = since(t);
  std::vector<uint32_t> all(static_cast<size_t>(dwc.points.size()));
  for (size_t i = 0; i < all.size(); ++i)
    all[i] = static_cast<uint32_t>(i);
  const auto pieces = pgkm::partition_guided(dwc.points, all, std::min(s.k, dwc.points.size()), fp);
  r.seconds[4] = since(t);
  r.cores = (cpu_seconds() - cpu_start) / std::chrono::duration<double>(t - start).count();

  uint64_t h = fingerprint(vectors);
  h = fingerprint(distinct.points.x, h);
  h = fingerprint(distinct.points.weight, h);
  h = fingerprint(distinct.source_to_point, h);
  h = fingerprint(std::vector<int>{fp.exponent()}, h);
  h = fingerprint(dwc.points.x, h);
  h = fingerprint(dwc.points.weight, h);
  h = fingerprint(dwc.input_to_point, h);
  h = fingerprint(std::vector<double>{dwc.final_epsilon}, h);
  for (const pgkm::PartitionPiece& p : pieces) {
    h = fingerprint(p.members, h);
    h = fingerprint(p.centroid, h);
    h = fingerprint(std::vector<uint64_t>{p.weight}, h);
  }
  r.digest = h;
  r.distinct = distinct.points.size();
  r.consolidated = dwc.points.size();
  return r;
}

std::vector<int> parse_threads(const std::string& list) {
  std::vector<int> out;
  std::stringstream in(list);
  std::string item;
  while (std::getline(in, item, ',')) {
    const int t = std::atoi(item.c_str());
    if (t < 1) usage("bad thread count '" + item + "'");
    out.push_back(t);
  }
  if (out.empty()) usage("--threads needs at least one count");
  return out;
}

// Runs one shape at every thread count; returns false when the outputs differ.
bool bench_shape(const Shape& s, const std::vector<int>& threads, int repeats, pgkm::DType dtype) {
  const std::vector<std::byte> bytes = make_weight(s, dtype);
  const pgkm::WeightView view{s.name, dtype, {s.rows, s.cols}, bytes};
  std::map<int, std::vector<Run>> runs;
  for (int rep = 0; rep < repeats; ++rep) {
    for (int t : threads) {
      omp_set_num_threads(t);
      runs[t].push_back(run_once(s, view));
    }
  }
  const Run& first = runs[threads[0]][0];
  std::printf("\n%s [%lld, %lld] %s b=%d K=%lld: %lld subvectors, %lld distinct, %lld after DWC\n",
              s.name.c_str(), static_cast<long long>(s.rows), static_cast<long long>(s.cols),
              pgkm::dtype_name(dtype), s.block_size, static_cast<long long>(s.k),
              static_cast<long long>(s.rows * s.cols / s.block_size),
              static_cast<long long>(first.distinct), static_cast<long long>(first.consolidated));
  std::printf("%-10s", "phase");
  for (int t : threads)
    std::printf("  %8s%-3d", "threads=", t);
  for (size_t i = 1; i < threads.size(); ++i)
    std::printf("  ratio 1:%-3d", threads[i]);
  std::printf("\n");
  for (int p = 0; p <= kPhaseCount; ++p) {
    std::vector<double> med;
    for (int t : threads) {
      std::vector<double> v;
      for (const Run& r : runs[t]) {
        double sec = 0;
        for (int q = 0; q < kPhaseCount; ++q)
          sec += (p == kPhaseCount || q == p) ? r.seconds[q] : 0;
        v.push_back(sec);
      }
      med.push_back(median(v));
    }
    std::printf("%-10s", p == kPhaseCount ? "total" : kPhases[p]);
    for (double m : med)
      std::printf("  %9.3f s", m);
    for (size_t i = 1; i < med.size(); ++i)
      std::printf("  %10.2fx", med[0] / med[i]);
    std::printf("\n");
  }
  std::printf("%-10s", "cores used");
  for (int t : threads) {
    std::vector<double> v;
    for (const Run& r : runs[t])
      v.push_back(r.cores);
    std::printf("  %9.2f  ", median(v));
  }
  std::printf("   (CPU time / wall time; below the thread count: waits or a loaded machine)\n");
  bool same = true;
  for (const auto& [t, rs] : runs) {
    for (const Run& r : rs)
      same = same && r.digest == first.digest;
  }
  std::printf("outputs identical across thread counts and repeats: %s (digest %016llx)\n",
              same ? "yes" : "NO", static_cast<unsigned long long>(first.digest));
  return same;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> shapes{"embed", "fc"};
  std::vector<int> threads{1, 2};
  int repeats = 5;
  pgkm::DType dtype = pgkm::DType::F32;
  for (int i = 1; i < argc; ++i) {
    const std::string key = argv[i];
    if (i + 1 >= argc) usage(key + " needs a value");
    const std::string value = argv[++i];
    if (key == "--shape") {
      shapes.clear();
      std::stringstream in(value);
      std::string item;
      while (std::getline(in, item, ','))
        shapes.push_back(item);
    } else if (key == "--threads") {
      threads = parse_threads(value);
    } else if (key == "--repeats") {
      repeats = std::atoi(value.c_str());
      if (repeats < 1) usage("--repeats must be >= 1");
    } else if (key == "--dtype") {
      if (value == "F32") {
        dtype = pgkm::DType::F32;
      } else if (value == "F16") {
        dtype = pgkm::DType::F16;
      } else if (value == "BF16") {
        dtype = pgkm::DType::BF16;
      } else {
        usage("unknown dtype '" + value + "'");
      }
    } else {
      usage("unknown option " + key);
    }
  }
  std::printf("bench_setup: %d repeats, medians; omp_get_num_procs() = %d\n", repeats,
              omp_get_num_procs());
  bool ok = true;
  for (const std::string& name : shapes) {
    const auto s = std::find_if(std::begin(kShapes), std::end(kShapes),
                                [&](const Shape& shape) { return shape.name == name; });
    if (s == std::end(kShapes)) usage("unknown shape '" + name + "'");
  }
  for (const std::string& name : shapes) {
    for (const Shape& s : kShapes) {
      if (s.name == name) ok = bench_shape(s, threads, repeats, dtype) && ok;
    }
  }
  return ok ? 0 : 1;
}
