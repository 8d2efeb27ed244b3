// Backend::assign on the CPU backend: nearest centroid against a brute-force
// double-precision reference, the exact arithmetic contract of backend.h, tie
// breaking, bit-identical scalar / AVX2 results and thread-count independence.
#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "core/errors.h"
#include "kernels/backend.h"
#include "tests/test_data.h"

namespace pgkm {
namespace {

constexpr int kThreadCounts[] = {1, 2, 4};

struct Result {
  std::vector<uint32_t> codes;
  std::vector<float> dist;
};

std::vector<float> random_normal(size_t count, float stddev, uint32_t seed) {
  return testdata::normal(static_cast<int64_t>(count), 1, stddev, seed);
}

Result run_assign(Backend& backend, const std::vector<float>& points, int dim,
                  const std::vector<float>& centroids) {
  const size_t n = points.size() / dim;
  const std::vector<uint32_t> weights(n, 1);
  const auto resident = backend.upload(points, weights, dim);
  Result r{std::vector<uint32_t>(n), std::vector<float>(n)};
  backend.assign(*resident, centroids, r.codes, r.dist);
  return r;
}

// The arithmetic contract of Backend::assign written out literally.
Result contract_reference(const std::vector<float>& points, int dim,
                          const std::vector<float>& centroids) {
  const size_t n = points.size() / dim;
  const size_t k = centroids.size() / dim;
  Result r{std::vector<uint32_t>(n), std::vector<float>(n)};
  for (size_t p = 0; p < n; ++p) {
    const float* x = &points[p * dim];
    float best = -std::numeric_limits<float>::infinity();
    for (size_t j = 0; j < k; ++j) {
      const float* c = &centroids[j * dim];
      float norm = 0.f;
      for (int d = 0; d < dim; ++d)
        norm = std::fma(c[d], c[d], norm);
      float score = -0.5f * norm;
      for (int d = 0; d < dim; ++d)
        score = std::fma(x[d], c[d], score);
      if (score > best || j == 0) {
        best = score;
        r.codes[p] = static_cast<uint32_t>(j);
      }
    }
    const float* c = &centroids[size_t{r.codes[p]} * dim];
    float acc = 0.f;
    for (int d = 0; d < dim; ++d) {
      const float t = x[d] - c[d];
      acc = std::fma(t, t, acc);
    }
    r.dist[p] = acc;
  }
  return r;
}

double true_distance(const float* x, const float* c, int dim) {
  double acc = 0.0;
  for (int d = 0; d < dim; ++d) {
    const double t = static_cast<double>(x[d]) - c[d];
    acc += t * t;
  }
  return acc;
}

// The contract scores in expanded form, |x|^2 - 2 score_j = |x - c_j|^2, so the
// float rounding of the score chain (2*dim+1 roundings of partial sums bounded by
// |c|^2 + |x|^2 / 2) can let a centroid up to twice that error (two scores compared,
// each doubled into a distance) farther than the true nearest one win. Slack in
// units of float epsilon per rounding, times that magnitude.
double expanded_form_slack(const float* x, const std::vector<float>& centroids, int dim) {
  double max_c2 = 0.0;
  for (size_t j = 0; j * dim < centroids.size(); ++j) {
    double c2 = 0.0;
    for (int d = 0; d < dim; ++d)
      c2 += double{centroids[j * dim + d]} * centroids[j * dim + d];
    max_c2 = std::max(max_c2, c2);
  }
  double x2 = 0.0;
  for (int d = 0; d < dim; ++d)
    x2 += double{x[d]} * x[d];
  const double roundings = 2.0 * dim + 2.0;
  return 4.0 * roundings * std::ldexp(1.0, -24) * (max_c2 + x2);
}

// Every kernel path this CPU has: scalar, AVX2 and AVX-512 where present.
std::vector<std::unique_ptr<Backend>> backends_for(int threads) {
  std::vector<std::unique_ptr<Backend>> out;
  out.push_back(make_cpu_backend({.threads = threads, .force_scalar = true}));
  auto avx2 = make_cpu_backend({.threads = threads, .widest_isa = CpuIsa::kAvx2});
  if (avx2->name() == "cpu-avx2") out.push_back(std::move(avx2));
  auto avx512 = make_cpu_backend({.threads = threads, .widest_isa = CpuIsa::kAvx512});
  if (avx512->name() == "cpu-avx512") out.push_back(std::move(avx512));
  return out;
}

void expect_identical(const Result& a, const Result& b, const std::string& what) {
  ASSERT_EQ(a.codes.size(), b.codes.size()) << what;
  for (size_t p = 0; p < a.codes.size(); ++p) {
    ASSERT_EQ(a.codes[p], b.codes[p]) << what << " point " << p;
    ASSERT_EQ(std::bit_cast<uint32_t>(a.dist[p]), std::bit_cast<uint32_t>(b.dist[p]))
        << what << " point " << p << ": " << a.dist[p] << " vs " << b.dist[p];
  }
}

class AssignRandom : public ::testing::TestWithParam<std::tuple<int, int, int>> {};

TEST_P(AssignRandom, MatchesReferencesOnEveryBackendAndThreadCount) {
  const auto [dim, k, n] = GetParam();
  const auto points = random_normal(size_t(n) * dim, 1.f, 17u + dim * 131u + n);
  const auto centroids = random_normal(size_t(k) * dim, 1.f, 99u + dim * 7u + k);
  const Result expected = contract_reference(points, dim, centroids);

  for (int p = 0; p < n; ++p) {
    const float* x = &points[size_t(p) * dim];
    double best = std::numeric_limits<double>::infinity();
    for (int j = 0; j < k; ++j) {
      best = std::min(best, true_distance(x, &centroids[size_t(j) * dim], dim));
    }
    const double chosen = true_distance(x, &centroids[size_t{expected.codes[p]} * dim], dim);
    ASSERT_LE(chosen, best + expanded_form_slack(x, centroids, dim)) << "point " << p;
  }
  bool saw_avx2 = false;
  for (int threads : kThreadCounts) {
    for (const auto& backend : backends_for(threads)) {
      saw_avx2 |= backend->name() != "cpu-scalar";
      const Result got = run_assign(*backend, points, dim, centroids);
      expect_identical(got, expected, backend->name() + " threads=" + std::to_string(threads));
    }
  }
  if (!saw_avx2) GTEST_SKIP() << "CPU lacks AVX2/FMA: only the scalar backend was checked";
}

INSTANTIATE_TEST_SUITE_P(Shapes, AssignRandom,
                         ::testing::Combine(::testing::Values(1, 2, 3, 4, 5, 7, 8, 12, 16, 31, 32),
                                            ::testing::Values(1, 7, 257),
                                            ::testing::Values(1, 9, 1001)));

// Every backend on every thread count gives `expected_codes` for these points.
void expect_codes(const std::vector<float>& points, int dim, const std::vector<float>& centroids,
                  const std::vector<uint32_t>& expected_codes) {
  for (int threads : kThreadCounts) {
    for (const auto& backend : backends_for(threads)) {
      const Result got = run_assign(*backend, points, dim, centroids);
      ASSERT_EQ(got.codes, expected_codes) << backend->name() << " threads=" << threads;
    }
  }
}

TEST(AssignTies, DuplicateCentroidsPickLowestIndex) {
  const int dim = 4;
  const int k = 20;
  auto centroids = random_normal(k * dim, 1.f, 5u);
  // 3 and 11 lie in different groups of 8, 3 and 5 in the same one.
  for (int d = 0; d < dim; ++d) {
    centroids[11 * dim + d] = centroids[3 * dim + d];
    centroids[5 * dim + d] = centroids[3 * dim + d];
  }
  std::vector<float> points;
  for (int copy = 0; copy < 13; ++copy) {
    points.insert(points.end(), centroids.begin() + 3 * dim, centroids.begin() + 4 * dim);
  }
  expect_codes(points, dim, centroids, std::vector<uint32_t>(13, 3));

  const auto random_points = random_normal(999 * dim, 1.f, 6u);
  for (const auto& backend : backends_for(2)) {
    const Result got = run_assign(*backend, random_points, dim, centroids);
    for (uint32_t code : got.codes) {
      ASSERT_NE(code, 5u);
      ASSERT_NE(code, 11u);
    }
  }
}

TEST(AssignTies, EquidistantCentroidsPickLowestIndex) {
  // x = 0 is exactly at distance 1 from both; every score is exactly -0.5.
  expect_codes({0.f}, 1, {-1.f, 1.f}, {0});
  expect_codes({0.f}, 1, {1.f, -1.f}, {0});
  // The tie across groups: indices 2 and 9, every other centroid farther away.
  std::vector<float> centroids(12, 5.f);
  centroids[2] = -1.f;
  centroids[9] = 1.f;
  expect_codes(std::vector<float>(9, 0.f), 1, centroids, std::vector<uint32_t>(9, 2));
}

TEST(AssignTies, ExactPointsHaveZeroDistance) {
  const int dim = 8;
  const auto centroids = random_normal(37 * dim, 0.02f, 8u);
  for (const auto& backend : backends_for(4)) {
    const Result got = run_assign(*backend, centroids, dim, centroids);
    for (uint32_t j = 0; j < 37; ++j) {
      EXPECT_EQ(got.codes[j], j);
      EXPECT_EQ(got.dist[j], 0.f);
    }
  }
}

TEST(AssignBackend, NamesFollowDispatch) {
  EXPECT_EQ(make_cpu_backend({0, true})->name(), "cpu-scalar");
  const std::string name = make_cpu_backend({})->name();
  EXPECT_TRUE(name == "cpu-avx512" || name == "cpu-avx2" || name == "cpu-scalar") << name;
  const std::string capped = make_cpu_backend({.widest_isa = CpuIsa::kAvx2})->name();
  EXPECT_TRUE(capped == "cpu-avx2" || capped == "cpu-scalar") << capped;
}

TEST(AssignBackend, RejectsBadArguments) {
  auto backend = make_cpu_backend({});
  const std::vector<float> points(12, 0.f);
  const std::vector<uint32_t> weights(3, 1);
  EXPECT_THROW(backend->upload(points, weights, 0), InputError);
  EXPECT_THROW(backend->upload(std::vector<float>(33, 0.f), {{1}}, 33), InputError);
  EXPECT_THROW(backend->upload(points, weights, 3), InputError);
  EXPECT_THROW(backend->upload(points, std::vector<uint32_t>{1, 0, 1}, 4), InputError);
  std::vector<float> not_finite = points;
  not_finite[5] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_THROW(backend->upload(not_finite, weights, 4), InputError);

  const auto resident = backend->upload(points, weights, 4);
  std::vector<uint32_t> codes(3);
  std::vector<float> dist(3);
  EXPECT_THROW(backend->assign(*resident, std::vector<float>(6, 0.f), codes, dist), InputError);
  EXPECT_THROW(backend->assign(*resident, {}, codes, dist), InputError);
  std::vector<uint32_t> short_codes(2);
  EXPECT_THROW(backend->assign(*resident, std::vector<float>(8, 0.f), short_codes, dist),
               InputError);
}

}  // namespace
}  // namespace pgkm
