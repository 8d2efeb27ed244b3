// The set-up steps of a layer give the same bits for 1, 2 and 4 OpenMP threads:
// extract_subvectors (layout, dtype conversion, finiteness check), deduplicate,
// max_abs / total_weight, exact_mean, consolidate_dense_weights and
// partition_guided. Data: shaped like trained weights (normal(0, 0.02) with 0.1%
// outliers), heavily duplicated, and sizes on either side of the thresholds at
// which each step starts using threads. Each step is also checked against a plain
// serial transcription where one is short.
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <cstring>
#include <functional>
#include <limits>
#include <map>
#include <numeric>
#include <random>
#include <vector>

#include "core/errors.h"
#include "engine/dwc.h"
#include "engine/layout.h"
#include "engine/pg_partition.h"
#include "engine/points.h"

namespace pgkm {
namespace {

constexpr int kThreadCounts[] = {1, 2, 4};

// f() with n OpenMP threads; the previous setting is restored.
template <typename F>
auto with_threads(int n, F f) {
  const int saved = omp_get_max_threads();
  omp_set_num_threads(n);
  auto result = f();
  omp_set_num_threads(saved);
  return result;
}

// Weights as bench/make_roberta_model.py makes them: normal(0, 0.02), 0.1% of the
// entries scaled by 5..10, and a few exact zeros of either sign.
std::vector<float> weight_like(size_t n, uint32_t seed) {
  std::mt19937 gen(seed);
  std::normal_distribution<float> normal(0.f, 0.02f);
  std::vector<float> w(n);
  for (float& v : w)
    v = normal(gen);
  std::uniform_int_distribution<size_t> where(0, n - 1);
  std::uniform_real_distribution<float> factor(5.f, 10.f);
  for (size_t i = 0; i < std::max<size_t>(1, n / 1000); ++i)
    w[where(gen)] *= factor(gen);
  for (size_t i = 0; i < std::max<size_t>(1, n / 5000); ++i)
    w[where(gen)] = i % 2 ? 0.f : -0.f;
  return w;
}

// n vectors of dim coordinates, each drawn from `values` distinct vectors (and
// -0.0 mixed into the zeros), so most vectors repeat.
std::vector<float> duplicated(size_t n, int dim, int values, uint32_t seed) {
  const std::vector<float> pool = weight_like(static_cast<size_t>(values * dim), seed);
  std::mt19937 gen(seed + 1);
  std::uniform_int_distribution<int> pick(0, values - 1);
  std::vector<float> x;
  x.reserve(n * static_cast<size_t>(dim));
  for (size_t i = 0; i < n; ++i) {
    const int v = pick(gen);
    for (int d = 0; d < dim; ++d) {
      const float c = pool[static_cast<size_t>(v * dim + d)];
      x.push_back(c == 0.f && i % 3 == 0 ? -0.f : c);
    }
  }
  return x;
}

std::vector<uint32_t> bits_of(const std::vector<float>& v) {
  std::vector<uint32_t> bits(v.size());
  std::memcpy(bits.data(), v.data(), v.size() * sizeof(float));
  return bits;
}

// ---- extract_subvectors / check_weight_values ----

// The PQ layout transcribed from layout.h: subvector blk * rows + row is
// W[row, blk*b : (blk+1)*b].
std::vector<float> reference_subvectors(const std::vector<float>& w, int64_t rows, int64_t cols,
                                        int b) {
  std::vector<float> out;
  for (int64_t blk = 0; blk < cols / b; ++blk) {
    for (int64_t row = 0; row < rows; ++row) {
      for (int d = 0; d < b; ++d)
        out.push_back(w[static_cast<size_t>(row * cols + blk * b + d)]);
    }
  }
  return out;
}

std::vector<std::byte> encode(const std::vector<float>& w, DType t) {
  std::vector<std::byte> bytes(w.size() * dtype_size(t));
  for (size_t i = 0; i < w.size(); ++i) {
    if (t == DType::F32) {
      std::memcpy(bytes.data() + 4 * i, &w[i], 4);
    } else {
      const uint16_t h = t == DType::F16 ? float_to_f16(w[i]) : float_to_bf16(w[i]);
      std::memcpy(bytes.data() + 2 * i, &h, 2);
    }
  }
  return bytes;
}

std::vector<float> decode(const std::vector<std::byte>& bytes, DType t) {
  std::vector<float> w(bytes.size() / dtype_size(t));
  for (size_t i = 0; i < w.size(); ++i) {
    if (t == DType::F32) {
      std::memcpy(&w[i], bytes.data() + 4 * i, 4);
    } else {
      uint16_t h;
      std::memcpy(&h, bytes.data() + 2 * i, 2);
      w[i] = t == DType::F16 ? f16_to_float(h) : bf16_to_float(h);
    }
  }
  return w;
}

TEST(SetupThreads, ExtractSubvectorsAtEveryThreadCount) {
  // numel around 2^16 (where conversion starts using threads), row counts that are
  // and are not multiples of the 16-row tile, and one RoBERTa-sized fc.
  const std::vector<std::pair<int64_t, int64_t>> shapes = {{4095, 16}, {4096, 16}, {4097, 16},
                                                           {17, 3856}, {1, 65552}, {3072, 768}};
  for (DType t : {DType::F32, DType::F16, DType::BF16}) {
    for (const auto& [rows, cols] : shapes) {
      for (int b : {4, 8, 16}) {
        const std::vector<std::byte> bytes =
            encode(weight_like(static_cast<size_t>(rows * cols), 3), t);
        const WeightView view{"w", t, {rows, cols}, bytes};
        const BlockLayout layout = make_block_layout("w", view.shape, b);
        const std::vector<float> expected = reference_subvectors(decode(bytes, t), rows, cols, b);
        for (int threads : kThreadCounts) {
          const auto got = with_threads(threads, [&] { return extract_subvectors(view, layout); });
          EXPECT_EQ(bits_of(got), bits_of(expected))
              << dtype_name(t) << " [" << rows << ", " << cols << "] b=" << b << " threads "
              << threads;
        }
      }
    }
  }
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const InputError& e) {
    return e.what();
  }
  return "no error";
}

TEST(SetupThreads, FirstNonFiniteElementIsNamedAtEveryThreadCount) {
  const int64_t rows = 1024;
  const int64_t cols = 768;
  std::vector<float> w = weight_like(static_cast<size_t>(rows * cols), 5);
  // The first bad element in memory order lies in the second half, another later
  // one in a later row and an earlier block, so neither the last thread's chunk
  // nor the block-major order may decide which is reported.
  w[700 * cols + 600] = std::numeric_limits<float>::quiet_NaN();
  w[900 * cols + 10] = std::numeric_limits<float>::infinity();
  for (DType t : {DType::F32, DType::F16, DType::BF16}) {
    const std::vector<std::byte> bytes = encode(w, t);
    const WeightView view{"fc1", t, {rows, cols}, bytes};
    const BlockLayout layout = make_block_layout("fc1", view.shape, 4);
    for (int threads : kThreadCounts) {
      const std::string expected = "fc1: element 538200 (row 700, column 600) is nan";
      const std::string check =
          with_threads(threads, [&] { return error_of([&] { check_weight_values(view); }); });
      const std::string extract = with_threads(
          threads, [&] { return error_of([&] { extract_subvectors(view, layout); }); });
      EXPECT_EQ(check.rfind(expected, 0), 0u) << check;
      EXPECT_EQ(extract, check);
    }
  }
}

// ---- deduplicate, max_abs, total_weight, exact_mean ----

// Deduplication transcribed from points.h: first occurrence order, -0.0 == +0.0.
Deduplicated reference_dedup(const std::vector<float>& x, int dim) {
  Deduplicated out;
  out.points.dim = dim;
  std::map<std::vector<uint32_t>, uint32_t> id;
  for (size_t i = 0; i < x.size() / static_cast<size_t>(dim); ++i) {
    std::vector<float> row(x.begin() + static_cast<ptrdiff_t>(i) * dim,
                           x.begin() + static_cast<ptrdiff_t>(i + 1) * dim);
    for (float& v : row)
      v = v == 0.f ? 0.f : v;
    const auto [it, added] = id.try_emplace(bits_of(row), static_cast<uint32_t>(id.size()));
    if (added) {
      out.points.x.insert(out.points.x.end(), row.begin(), row.end());
      out.points.weight.push_back(0);
    }
    ++out.points.weight[it->second];
    out.source_to_point.push_back(it->second);
  }
  return out;
}

void expect_same(const Deduplicated& a, const Deduplicated& b, const std::string& what) {
  EXPECT_EQ(a.points.dim, b.points.dim) << what;
  EXPECT_EQ(bits_of(a.points.x), bits_of(b.points.x)) << what;
  EXPECT_EQ(a.points.weight, b.points.weight) << what;
  EXPECT_EQ(a.source_to_point, b.source_to_point) << what;
}

TEST(SetupThreads, DeduplicateAtEveryThreadCount) {
  struct Case {
    const char* name;
    std::vector<float> x;
    int dim;
  };
  std::vector<Case> cases;
  // Around 2^15 rows (threads start) and 2048 * 2^k rows (one more shard bit).
  for (size_t n : {32767u, 32768u, 32769u, 65536u, 65537u}) {
    cases.push_back({"weights", weight_like(n * 4, static_cast<uint32_t>(n)), 4});
  }
  cases.push_back({"weights b=16", weight_like(200000 * 16, 8), 16});
  cases.push_back({"weights b=1", weight_like(300000, 9), 1});
  cases.push_back({"duplicated 25 values", duplicated(100000, 2, 25, 10), 2});
  cases.push_back({"duplicated 5000 values", duplicated(150001, 8, 5000, 11), 8});
  cases.push_back({"one value", std::vector<float>(70000 * 4, 0.5f), 4});
  for (const Case& c : cases) {
    const Deduplicated expected = reference_dedup(c.x, c.dim);
    for (int threads : kThreadCounts) {
      const std::string what = std::string(c.name) +
                               ", n=" + std::to_string(c.x.size() / static_cast<size_t>(c.dim)) +
                               ", threads " + std::to_string(threads);
      const Deduplicated got = with_threads(threads, [&] { return deduplicate(c.x, c.dim); });
      expect_same(got, expected, what);
      EXPECT_EQ(with_threads(threads, [&] { return got.points.total_weight(); }),
                c.x.size() / static_cast<size_t>(c.dim))
          << what;
      float max_abs = 0.f;
      for (float v : c.x)
        max_abs = std::max(max_abs, std::fabs(v));
      EXPECT_EQ(with_threads(threads, [&] { return got.points.max_abs(); }), max_abs) << what;
    }
  }
}

TEST(SetupThreads, ExactMeanOfManyMembersAtEveryThreadCount) {
  PointSet points;
  points.dim = 16;
  points.x = weight_like(100000 * 16, 12);
  points.weight.resize(100000);
  std::mt19937 gen(13);
  for (uint32_t& w : points.weight)
    w = 1 + gen() % 50;
  const FixedPoint fp = FixedPoint::for_data(points.max_abs(), points.total_weight());
  for (int64_t m : {32767, 32768, 32769, 99999}) {
    std::vector<uint32_t> members(static_cast<size_t>(m));
    std::iota(members.begin(), members.end(), 1u);
    std::shuffle(members.begin(), members.end(), gen);
    // The integer sums written out, one member at a time.
    std::vector<float> expected(16);
    for (int d = 0; d < 16; ++d) {
      int64_t sum = 0;
      uint64_t count = 0;
      for (uint32_t i : members) {
        sum += int64_t{points.weight[i]} * fp.quantize(points.row(i)[static_cast<size_t>(d)]);
        count += points.weight[i];
      }
      expected[static_cast<size_t>(d)] = fp.mean(sum, count);
    }
    for (int threads : kThreadCounts) {
      const std::vector<float> got = with_threads(threads, [&] {
        std::vector<float> mean(16);
        exact_mean(points, members, fp, mean);
        return mean;
      });
      EXPECT_EQ(bits_of(got), bits_of(expected)) << m << " members, threads " << threads;
    }
  }
}

// ---- consolidate_dense_weights ----

// The origin, then `count` circles of `per_circle` points around it at radii 10,
// 20, ... (radial jitter 1e-3): each circle is one ring of the origin's task, so a
// round holds `count` large rings.
std::vector<float> circles(int count, int per_circle) {
  std::mt19937 gen(23);
  std::uniform_real_distribution<float> angle(0.f, 6.2831853f);
  std::uniform_real_distribution<float> jitter(-5e-4f, 5e-4f);
  std::vector<float> x{0.f, 0.f};
  for (int c = 1; c <= count; ++c) {
    for (int i = 0; i < per_circle; ++i) {
      const float a = angle(gen);
      const float r = 10.f * static_cast<float>(c) + jitter(gen);
      x.insert(x.end(), {r * std::cos(a), r * std::sin(a)});
    }
  }
  return x;
}

void expect_same(const DwcResult& a, const DwcResult& b, const std::string& what) {
  EXPECT_EQ(a.points.dim, b.points.dim) << what;
  EXPECT_EQ(bits_of(a.points.x), bits_of(b.points.x)) << what;
  EXPECT_EQ(a.points.weight, b.points.weight) << what;
  EXPECT_EQ(a.input_to_point, b.input_to_point) << what;
  EXPECT_EQ(a.dense_clusters, b.dense_clusters) << what;
  EXPECT_EQ(a.independent_points, b.independent_points) << what;
  EXPECT_EQ(a.initial_epsilon, b.initial_epsilon) << what;
  EXPECT_EQ(a.final_epsilon, b.final_epsilon) << what;
  EXPECT_EQ(a.epsilon_updates, b.epsilon_updates) << what;
}

TEST(SetupThreads, ConsolidationAtEveryThreadCount) {
  struct Case {
    const char* name;
    std::vector<float> x;
    int dim;
    int64_t k;
    bool has_dense;  // whether the data holds dense clusters at the first epsilon
  };
  std::vector<Case> cases;
  // Distinct points around 2^15 (large tasks sort with all threads), an fc-like
  // layer at b=4, embedding-like ones at b=16 (rings of over 2^15 points: sorted
  // by all threads), and deduplicated heavy duplicates.
  for (size_t n : {32767u, 32768u, 32769u}) {
    cases.push_back({"weights", weight_like(n * 4, static_cast<uint32_t>(n + 1)), 4, 256, true});
  }
  cases.push_back({"fc-like", weight_like(300000 * 4, 14), 4, 3072, true});
  cases.push_back({"embedding-like", weight_like(120000 * 16, 15), 16, 768, false});
  cases.push_back({"embedding-like", weight_like(400000 * 16, 16), 16, 768, false});
  cases.push_back({"duplicated", duplicated(400000, 4, 60000, 17), 4, 1024, true});
  cases.push_back({"circles", circles(10, 34000), 2, 256, true});
  for (const Case& c : cases) {
    const Deduplicated distinct = deduplicate(c.x, c.dim);
    const FixedPoint fp =
        FixedPoint::for_data(distinct.points.max_abs(), distinct.points.total_weight());
    for (bool count_weighted : {false, true}) {
      DwcParams params;
      params.count_weighted = count_weighted;
      const DwcResult one = with_threads(
          1, [&] { return consolidate_dense_weights(distinct.points, c.k, params, fp, c.name); });
      EXPECT_EQ(one.dense_clusters > 0, c.has_dense) << c.name;
      for (int threads : kThreadCounts) {
        const DwcResult got = with_threads(threads, [&] {
          return consolidate_dense_weights(distinct.points, c.k, params, fp, c.name);
        });
        expect_same(got, one,
                    std::string(c.name) + ", " + std::to_string(distinct.points.size()) +
                        " points, count_weighted " + std::to_string(count_weighted) + ", threads " +
                        std::to_string(threads));
      }
    }
  }
}

// ---- partition_guided ----

void expect_same(const std::vector<PartitionPiece>& a, const std::vector<PartitionPiece>& b,
                 const std::string& what) {
  ASSERT_EQ(a.size(), b.size()) << what;
  for (size_t p = 0; p < a.size(); ++p) {
    EXPECT_EQ(a[p].members, b[p].members) << what << ", piece " << p;
    EXPECT_EQ(a[p].weight, b[p].weight) << what << ", piece " << p;
    EXPECT_EQ(bits_of(a[p].centroid), bits_of(b[p].centroid)) << what << ", piece " << p;
  }
}

std::vector<PartitionPiece> partition_at(int threads, const PointSet& points,
                                         std::span<const uint32_t> members, int64_t k) {
  const FixedPoint fp = FixedPoint::for_data(points.max_abs(), points.total_weight());
  return with_threads(threads, [&] { return partition_guided(points, members, k, fp); });
}

std::vector<uint32_t> all_of(const PointSet& points) {
  std::vector<uint32_t> all(static_cast<size_t>(points.size()));
  std::iota(all.begin(), all.end(), 0u);
  return all;
}

TEST(PartitionThreads, SameAtEveryThreadCount) {
  struct Case {
    const char* name;
    PointSet points;
    int64_t k;
  };
  std::vector<Case> cases;
  // Unit weights (the cut is known before selecting) around 2^15 and 2^16 members,
  // where the first one or two levels split with all threads.
  for (size_t n : {32767u, 32768u, 32769u, 65537u}) {
    cases.push_back(
        {"unit", deduplicate(weight_like(n * 4, static_cast<uint32_t>(n + 2)), 4).points, 768});
  }
  // Weighted points from deduplicated heavy duplicates: the weighted selection.
  cases.push_back({"duplicated", deduplicate(duplicated(600000, 4, 90000, 17), 4).points, 3072});
  cases.push_back(
      {"duplicated b=16", deduplicate(duplicated(300000, 16, 70000, 18), 16).points, 768});
  for (Case& c : cases) {
    const std::vector<uint32_t> all = all_of(c.points);
    const auto one = partition_at(1, c.points, all, c.k);
    for (int threads : kThreadCounts) {
      expect_same(partition_at(threads, c.points, all, c.k), one,
                  std::string(c.name) + ", " + std::to_string(c.points.size()) +
                      " points, threads " + std::to_string(threads));
    }
  }
}

// One heavy point per side makes the weighted cut fall outside what the children
// can take, so it is clamped (and the left child is then found by rank).
TEST(PartitionThreads, ClampedCutsAtEveryThreadCount) {
  const int64_t bulk = 40000;
  PointSet points;
  points.dim = 2;
  std::mt19937 gen(19);
  std::normal_distribution<float> spread(0.f, 0.5f);
  for (int64_t i = 0; i < bulk; ++i) {
    points.x.insert(points.x.end(), {50.f + spread(gen), spread(gen)});
    points.weight.push_back(1 + static_cast<uint32_t>(gen() % 3));
  }
  points.x.insert(points.x.end(), {-100.f, 0.f, 100.f, 0.f});
  points.weight.insert(points.weight.end(), {1000000000u, 1000100000u});
  const std::vector<uint32_t> all = all_of(points);
  for (int64_t k : {int64_t{3}, bulk - 1, bulk + 1}) {
    const auto one = partition_at(1, points, all, k);
    for (int threads : kThreadCounts) {
      expect_same(partition_at(threads, points, all, k), one,
                  "k=" + std::to_string(k) + ", threads " + std::to_string(threads));
    }
  }
}

// Members a subset in shuffled order, as Partitioning-Guided Cluster Fine-tuning
// passes them.
TEST(PartitionThreads, SubsetInAnyOrderAtEveryThreadCount) {
  const PointSet points = deduplicate(duplicated(300000, 4, 120000, 20), 4).points;
  std::vector<uint32_t> members;
  for (uint32_t i = 0; i < points.size(); i += 2)
    members.push_back(i);
  std::shuffle(members.begin(), members.end(), std::mt19937(21));
  const auto one = partition_at(1, points, members, 500);
  for (int threads : kThreadCounts) {
    expect_same(partition_at(threads, points, members, 500), one,
                "threads " + std::to_string(threads));
  }
}

// Bad members of a large set are found on all threads and reported, at every
// thread count, as the first bad member in member order.
TEST(PartitionThreads, BadMembersAreNamedAtEveryThreadCount) {
  PointSet points;
  points.dim = 4;
  points.x = weight_like(60000 * 4, 22);
  points.weight.assign(60000, 1);
  const FixedPoint fp = FixedPoint::for_data(points.max_abs(), points.total_weight());
  std::vector<uint32_t> members(50000);
  std::iota(members.begin(), members.end(), 0u);
  struct Case {
    std::function<void(PointSet&, std::vector<uint32_t>&)> spoil;
    std::string message;
  };
  const std::vector<Case> cases = {
      {[](PointSet&, std::vector<uint32_t>& m) { m[40000] = 60000; },
       "member index 60000 >= number of points 60000"},
      {[](PointSet&, std::vector<uint32_t>& m) { m[45000] = m[30000]; },
       "member index 30000 appears more than once"},
      {[](PointSet& p, std::vector<uint32_t>&) { p.weight[41000] = 0; },
       "point 41000 has weight 0"},
      {[](PointSet& p, std::vector<uint32_t>&) {
         p.x[4 * 42000 + 1] = std::numeric_limits<float>::infinity();
         p.weight[43000] = 0;
       },
       "point 42000 has a non-finite coordinate inf"},
  };
  for (const Case& c : cases) {
    PointSet spoiled = points;
    std::vector<uint32_t> spoiled_members = members;
    c.spoil(spoiled, spoiled_members);
    for (int threads : kThreadCounts) {
      const std::string error = with_threads(threads, [&] {
        return error_of([&] { partition_guided(spoiled, spoiled_members, 8, fp); });
      });
      EXPECT_EQ(error, "partition_guided: " + c.message) << "threads " << threads;
    }
  }
}

}  // namespace
}  // namespace pgkm
