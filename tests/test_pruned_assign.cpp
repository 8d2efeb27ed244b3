// Backend::assign_pruned on the CPU backend: codes and distances bit-identical to brute
// force on every kernel path the CPU has (scalar, AVX2, AVX-512), every thread count,
// every kind of previous codes, exact ties, extreme magnitudes and k-means runs; the
// candidate lists of kernels/candidates.h. The search's state and interface:
// test_pruned_state.cpp.
#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "core/errors.h"
#include "core/limits.h"
#include "kernels/backend.h"
#include "kernels/candidates.h"
#include "tests/pruned_test_util.h"

namespace pgkm {
namespace {

using namespace pruned_test;  // NOLINT(google-build-using-namespace)

constexpr int kThreadCounts[] = {1, 2, 4};

// Every path, thread count and kind of previous codes gives `want` bit for bit; the
// brute-force kernels of every path do too.
void check_case(const Case& c, const std::string& what, uint32_t seed = 1) {
  const Result want = reference(c);
  const bool scalar_ok = double(c.n()) * c.k() * c.dim <= kScalarBudget;
  for (Previous kind : {Previous::kCurrent, Previous::kStale, Previous::kRandom, Previous::kZero}) {
    const auto previous = previous_codes(c, want, kind, seed);
    for (int threads : kThreadCounts) {
      // Every kind of previous codes on 2 threads; thread counts on stale codes.
      if (threads != 2 && kind != Previous::kStale) continue;
      for (const auto& backend : backends_for(threads)) {
        if (backend->name() == "cpu-scalar" && !scalar_ok) continue;
        const std::string label = what + " " + backend->name() +
                                  " threads=" + std::to_string(threads) +
                                  " previous=" + std::to_string(int(kind));
        SearchStats stats;
        expect_identical(pruned(*backend, c, previous, stats), want, label);
        expect_sane(stats, c, label);
        if (kind == Previous::kCurrent && threads == 2) {
          expect_identical(brute(*backend, c), want, label + " brute");
        }
      }
    }
  }
}

Case make_case(size_t n, size_t k, int dim, uint32_t seed, float scale = 1.f) {
  Case c{normal(n * dim, scale, seed), normal(k * dim, scale, seed + 7), dim};
  return c;
}

class PrunedGrid : public ::testing::TestWithParam<int> {};

// Every block size, two centroid counts each from 2 to 4096 (a sample of the grid) on
// unstructured data, and clustered data on which the search prunes in any dimension.
TEST_P(PrunedGrid, MatchesBruteForce) {
  constexpr size_t kCounts[] = {2, 5, 8, 17, 64, 200, 1000, 4096};
  const int dim = GetParam();
  for (size_t k : {kCounts[dim % 8], kCounts[(3 * dim + 1) % 8]}) {
    const size_t n = 1000 + 37 * dim;
    // Centroids drawn from the points, as k-means initializes them.
    Case c = make_case(n, k, dim, 100u + dim);
    for (size_t j = 0; j < k; ++j) {
      std::copy_n(c.points.begin() + (j * 7919 % n) * dim, dim, c.centroids.begin() + j * dim);
    }
    check_case(c, "dim=" + std::to_string(dim) + " k=" + std::to_string(k), dim);
    if (HasFatalFailure()) return;
  }
  // Blobs: k / 4 centres, points around them, centroids drawn from the points.
  const size_t k = 40 + 37 * size_t(dim);
  const size_t n = 2000;
  const auto centres = normal(k / 4 * dim, 3.f, 200u + dim);
  const auto noise = normal(n * dim, 0.3f, 300u + dim);
  Case c{std::vector<float>(n * dim), std::vector<float>(k * dim), dim};
  for (size_t p = 0; p < n; ++p) {
    for (int d = 0; d < dim; ++d)
      c.points[p * dim + d] = centres[(p % (k / 4)) * dim + d] + noise[p * dim + d];
  }
  for (size_t j = 0; j < k; ++j)
    std::copy_n(c.points.begin() + (j * 7919 % n) * dim, dim, c.centroids.begin() + j * dim);
  check_case(c, "blobs dim=" + std::to_string(dim) + " k=" + std::to_string(k), dim);
}

INSTANTIATE_TEST_SUITE_P(BlockSizes, PrunedGrid, ::testing::Range(1, kMaxBlockSize + 1));

TEST(PrunedAssign, WeightLikeDataWithOutliers) {
  for (int dim : {4, 8, 16}) {
    Case c{weight_like(6000 * size_t(dim), 3u), {}, dim};
    c.centroids = weight_like(512 * size_t(dim), 4u);
    check_case(c, "weights dim=" + std::to_string(dim));
    if (HasFatalFailure()) return;
  }
}

TEST(PrunedAssign, HeavyDuplicates) {
  // 20 distinct points, each repeated; centroids include exact copies of points and of
  // each other, so candidate keys and scores tie.
  const int dim = 4;
  const auto distinct = normal(20 * dim, 1.f, 11u);
  Case c{{}, {}, dim};
  for (int copy = 0; copy < 150; ++copy)
    c.points.insert(c.points.end(), distinct.begin(), distinct.end());
  for (int j = 0; j < 90; ++j) {
    const int src = (j * 7) % 20;
    c.centroids.insert(c.centroids.end(), distinct.begin() + src * dim,
                       distinct.begin() + (src + 1) * dim);
  }
  check_case(c, "duplicates");
}

TEST(PrunedAssign, ExactTiesOnAnIntegerGrid) {
  // Small integers make every score exact: many points are equidistant from several
  // centroids, which sit in different candidate groups.
  for (int dim : {1, 2, 3, 4, 8}) {
    std::mt19937 rng(5u + dim);
    std::uniform_int_distribution<int> coord(-3, 3);
    Case c{std::vector<float>(3000 * size_t(dim)), std::vector<float>(300 * size_t(dim)), dim};
    for (float& v : c.points)
      v = float(coord(rng));
    for (float& v : c.centroids)
      v = float(coord(rng)) + 0.5f;
    check_case(c, "grid dim=" + std::to_string(dim));
    if (HasFatalFailure()) return;
  }
}

TEST(PrunedAssign, DuplicatedCentroidsPickTheLowestIndex) {
  // 50 copies of one centroid spread over the index range, plus others: the candidate
  // list starts with 50 exact ties (7 groups), and the points sit on the copy.
  const int dim = 8;
  Case c{{}, normal(200 * dim, 1.f, 21u), dim};
  for (int j = 0; j < 50; ++j) {
    std::copy_n(c.centroids.begin() + 3 * dim, dim, c.centroids.begin() + (3 + 4 * j) * dim);
  }
  for (int p = 0; p < 100; ++p)
    c.points.insert(c.points.end(), c.centroids.begin() + 3 * dim, c.centroids.begin() + 4 * dim);
  const auto noise = normal(900 * dim, 1.f, 22u);
  c.points.insert(c.points.end(), noise.begin(), noise.end());
  const Result want = reference(c);
  for (size_t p = 0; p < 100; ++p)
    ASSERT_EQ(want.codes[p], 3u);
  // Previous codes on the highest copy: the search must still find copy 3.
  const std::vector<uint32_t> previous(c.n(), 3 + 4 * 49);
  for (const auto& backend : backends_for(2)) {
    SearchStats stats;
    expect_identical(pruned(*backend, c, previous, stats), want, backend->name());
  }
  check_case(c, "copies");
}

TEST(PrunedAssign, EquidistantPointsPickTheLowestIndex) {
  // x = 0 between c_0 = +e and copies of -e: every score is exactly -|e|^2 / 2. From
  // previous code 1 (-e), the candidates in key order are the copies of -e (key 0),
  // then c_0 (key 4|e|^2): the lowest index, 0, is last in search order, in the same
  // group as the copies (1 copy) or in a later one (9 copies).
  for (int dim : {1, 2, 5, 8}) {
    for (int copies : {1, 9}) {
      Case c{std::vector<float>(size_t(dim) * 64, 0.f), {}, dim};
      const auto far = normal(size_t(dim) * 40, 1.f, 23u);
      for (int j = 0; j < 40; ++j) {
        for (int d = 0; d < dim; ++d) {
          const float e = d == 0 ? 1.f : 0.25f;
          const float v = j == 0 ? e : j <= copies ? -e : 100.f + far[size_t(j) * dim + d];
          c.centroids.push_back(v);
        }
      }
      const std::vector<uint32_t> previous(c.n(), 1);
      const Result want = reference(c);
      ASSERT_EQ(want.codes[0], 0u);
      for (const auto& backend : backends_for(1)) {
        SearchStats stats;
        expect_identical(
            pruned(*backend, c, previous, stats), want,
            backend->name() + " dim=" + std::to_string(dim) + " copies=" + std::to_string(copies));
        EXPECT_EQ(stats.brute_force, 0);
      }
    }
  }
}

TEST(PrunedAssign, RoundingMarginIsNeeded) {
  // Far from the origin the score of a centroid just outside the exact pruning ball
  // (|c_a - c_k| > 2 |x - c_a|) can round up to c_a's: brute force then picks c_k if
  // its index is lower. The search must find those points too.
  const int dim = 1;
  Case c{{}, {}, dim};
  std::vector<uint32_t> previous;
  for (int j = 0; j < 64; ++j) {
    const float base = 1000.f * float(j + 1);
    const float eps = 1e-4f * float(j % 16 + 1) * float(j + 1);
    c.centroids.push_back(base + 2.f + eps);  // index 2j: c_k
    c.centroids.push_back(base);              // index 2j + 1: c_a
    for (int q = 0; q < 8; ++q) {
      c.points.push_back(base + 1.f - 1e-4f * float(q) * float(j + 1));
      previous.push_back(uint32_t(2 * j + 1));
    }
  }
  const Result want = reference(c);
  int outside = 0;  // points whose winner lies outside the exact ball
  for (size_t p = 0; p < c.n(); ++p) {
    const double x = c.points[p];
    const double ca = c.centroids[previous[p]];
    const double ck = c.centroids[want.codes[p]];
    outside += std::fabs(ck - ca) > 2.0 * std::fabs(x - ca);
  }
  ASSERT_GT(outside, 0) << "the data no longer exercise the rounding margin";
  for (const auto& backend : backends_for(2)) {
    SearchStats stats;
    expect_identical(pruned(*backend, c, previous, stats), want, backend->name());
    EXPECT_EQ(stats.brute_force, 0);
  }
}

TEST(PrunedAssign, TinyAndHugeMagnitudes) {
  // Subnormal products, and values up to the 1e18 a backend accepts (clamped there);
  // magnitudes beyond the rounding bound's range are in
  // FewCentroidsAndUnsafeMagnitudesUseBruteForce.
  for (float scale : {1e-30f, 1e-20f, 1e15f, 2e17f}) {
    for (int dim : {3, 8}) {
      Case c = make_case(1500, 100, dim, 31u + dim, scale);
      for (float& v : c.points)
        v = std::clamp(v, -1e18f, 1e18f);
      for (float& v : c.centroids)
        v = std::clamp(v, -1e18f, 1e18f);
      check_case(c, "scale=" + std::to_string(scale) + " dim=" + std::to_string(dim));
      if (HasFatalFailure()) return;
    }
  }
}

// A few Lloyd iterations (means in double), each pass pruned with the previous codes.
TEST(PrunedAssign, LloydIterationsStayExactAndPrune) {
  for (int dim : {4, 8}) {
    const size_t n = 40000;
    const size_t k = 512;
    Case c{weight_like(n * dim, 41u), std::vector<float>(k * dim), dim};
    for (size_t j = 0; j < k; ++j)
      std::copy_n(c.points.begin() + (j * 7919 % n) * dim, dim, c.centroids.begin() + j * dim);
    std::vector<uint32_t> codes(n, 0);
    double fraction = 1.0;
    for (int step = 0; step < 6; ++step) {
      const Result want = reference(c);
      for (int threads : {1, 4}) {
        for (const auto& backend : backends_for(threads)) {
          if (backend->name() == "cpu-scalar" && (threads != 4 || step % 2 != 0)) continue;
          SearchStats stats;
          const Result got = pruned(*backend, c, codes, stats);
          const std::string label = "dim=" + std::to_string(dim) + " step=" + std::to_string(step) +
                                    " " + backend->name();
          expect_identical(got, want, label);
          expect_sane(stats, c, label);
          fraction = stats.scored_fraction();
        }
      }
      if (HasFatalFailure()) return;
      codes = want.codes;
      std::vector<double> sums(k * dim, 0.0);
      std::vector<size_t> counts(k, 0);
      for (size_t p = 0; p < n; ++p) {
        ++counts[codes[p]];
        for (int d = 0; d < dim; ++d)
          sums[codes[p] * dim + d] += c.points[p * dim + d];
      }
      for (size_t j = 0; j < k; ++j) {
        if (counts[j] == 0) continue;
        for (int d = 0; d < dim; ++d)
          c.centroids[j * dim + d] = float(sums[j * dim + d] / double(counts[j]));
      }
    }
    if (dim == 4) {
      EXPECT_LT(fraction, 0.2) << "b=4 should score few centroids mid-run";
    }
    RecordProperty("scored_fraction_dim" + std::to_string(dim), std::to_string(fraction));
  }
}

TEST(PrunedAssign, ScoresFewCentroidsOnClusteredData) {
  // Well separated clusters and current previous codes: a point scores one or two
  // groups of candidates, not all 1024 centroids.
  const int dim = 4;
  Case c{{}, {}, dim};
  const auto centres = normal(1024 * dim, 10.f, 71u);
  const auto noise = normal(1024 * 20 * dim, 0.01f, 72u);
  for (size_t p = 0; p < 1024 * 20; ++p) {
    for (int d = 0; d < dim; ++d)
      c.points.push_back(centres[(p % 1024) * dim + d] + noise[p * dim + d]);
  }
  c.centroids = centres;
  const Result want = reference(c);
  for (const auto& backend : backends_for(2)) {
    SearchStats stats;
    expect_identical(pruned(*backend, c, want.codes, stats), want, backend->name());
    EXPECT_LT(stats.scored_fraction(), 0.05) << backend->name();
    EXPECT_EQ(stats.brute_force, 0) << backend->name();
  }
}

TEST(PrunedAssign, FewCentroidsAndUnsafeMagnitudesUseBruteForce) {
  for (const auto& backend : backends_for(1)) {
    Case few = make_case(500, 9, 4, 81u);
    SearchStats stats;
    expect_identical(pruned(*backend, few, std::vector<uint32_t>(500, 0), stats), reference(few),
                     backend->name());
    EXPECT_EQ(stats.brute_force, 500);
    EXPECT_EQ(stats.scored, stats.full);
    // |x| near the 1e18 that uploads accept, in 32 dimensions: scores near 1e38, beyond
    // what the rounding bound covers (candidates::pruning_is_safe).
    Case huge = make_case(500, 64, 32, 82u);
    for (float& v : huge.points)
      v = std::copysign(0.9e18f + 0.1e18f * std::fabs(std::tanh(v)), v);
    for (float& v : huge.centroids)
      v = std::copysign(0.9e18f + 0.1e18f * std::fabs(std::tanh(v)), v);
    expect_identical(pruned(*backend, huge, std::vector<uint32_t>(500, 0), stats), reference(huge),
                     backend->name());
    EXPECT_EQ(stats.brute_force, 500);
  }
}

TEST(CandidateLists, HoldEveryWinnerAndAreSorted) {
  const int dim = 6;
  Case c{weight_like(3000 * dim, 91u), weight_like(200 * dim, 92u), dim};
  const Result want = reference(c);
  const auto previous = previous_codes(c, want, Previous::kStale, 93u);
  const double cmax = candidates::max_norm_upper(c.centroids, dim);
  std::vector<float> limits(c.k(), -1.f);
  for (size_t p = 0; p < c.n(); ++p) {
    const double d2 = candidates::squared_distance_upper(&c.points[p * dim],
                                                         &c.centroids[previous[p] * dim], dim);
    limits[previous[p]] = std::max(limits[previous[p]], candidates::key_limit(dim, d2, cmax));
  }
  const auto lists = candidates::build_candidate_lists(c.centroids, dim, limits);
  ASSERT_EQ(lists.offsets.size(), c.k() + 1);
  for (size_t a = 0; a < c.k(); ++a) {
    for (int64_t i = lists.offsets[a]; i < lists.offsets[a + 1]; ++i) {
      EXPECT_EQ(lists.keys[i],
                candidates::pair_key(&c.centroids[a * dim], &c.centroids[lists.ids[i] * dim], dim));
      EXPECT_LE(lists.keys[i], limits[a]);
      if (i > lists.offsets[a]) {
        EXPECT_LT(candidates::pack_candidate(lists.keys[i - 1], lists.ids[i - 1]),
                  candidates::pack_candidate(lists.keys[i], lists.ids[i]));
      }
    }
  }
  for (size_t p = 0; p < c.n(); ++p) {
    const auto first = lists.ids.begin() + lists.offsets[previous[p]];
    const auto last = lists.ids.begin() + lists.offsets[previous[p] + 1];
    ASSERT_NE(std::find(first, last, want.codes[p]), last) << "point " << p;
  }
  EXPECT_LT(lists.ids.size(), c.k() * c.k());
}

TEST(CandidateLists, KeyLimitIsConservative) {
  // Zero distance still leaves room for rounding; the float range ends in +inf.
  EXPECT_GT(candidates::key_limit(4, 0.0, 1.0), 0.f);
  EXPECT_GE(candidates::key_limit(4, 1.0, 1.0), 4.f);
  EXPECT_EQ(candidates::key_limit(4, 1e77, 1.0), std::numeric_limits<float>::infinity());
  EXPECT_TRUE(candidates::pruning_is_safe(1e15, 1e15));
  EXPECT_FALSE(candidates::pruning_is_safe(1e20, 1e19));
  EXPECT_EQ(candidates::pair_key(std::vector<float>{1.f, 2.f}.data(),
                                 std::vector<float>{4.f, 6.f}.data(), 2),
            25.f);
}

TEST(PrunedAssign, NamesTheKernelPath) {
  EXPECT_EQ(make_cpu_backend({0, true})->name(), "cpu-scalar");
  EXPECT_EQ(make_cpu_backend({0, false, CpuIsa::kScalar})->name(), "cpu-scalar");
  if (cpu_has("cpu-avx2")) {
    EXPECT_EQ(make_cpu_backend({0, false, CpuIsa::kAvx2})->name(), "cpu-avx2");
  }
  if (!cpu_has("cpu-avx512")) GTEST_SKIP() << "CPU lacks AVX-512: that path was not run";
}

}  // namespace
}  // namespace pgkm
