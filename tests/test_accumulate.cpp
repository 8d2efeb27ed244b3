// Backend::accumulate on the CPU backend: exact fixed-point sums and weighted counts,
// independent of point order and thread count.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <random>
#include <vector>

#include "core/errors.h"
#include "kernels/backend.h"
#include "kernels/fixed_point.h"

namespace pgkm {
namespace {

struct Data {
  int dim = 0;
  int k = 0;
  std::vector<float> points;
  std::vector<uint32_t> weights;
  std::vector<uint32_t> codes;
};

struct Totals {
  std::vector<int64_t> sums;
  std::vector<uint64_t> counts;
  bool operator==(const Totals&) const = default;
};

Data random_data(int n, int dim, int k, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.f, 0.02f);
  std::uniform_int_distribution<uint32_t> weight(1, 5);
  std::uniform_int_distribution<uint32_t> code(0, k - 1);
  Data data{dim, k, std::vector<float>(size_t(n) * dim), std::vector<uint32_t>(n),
            std::vector<uint32_t>(n)};
  for (float& v : data.points)
    v = normal(rng);
  for (uint32_t& w : data.weights)
    w = weight(rng);
  for (uint32_t& c : data.codes)
    c = code(rng);
  return data;
}

FixedPoint fixed_point_for(const Data& data) {
  float max_abs = 0.f;
  for (float v : data.points)
    max_abs = std::max(max_abs, std::fabs(v));
  const uint64_t total = std::accumulate(data.weights.begin(), data.weights.end(), uint64_t{0});
  return FixedPoint::for_data(max_abs, total);
}

Totals reference(const Data& data, const FixedPoint& fp) {
  Totals t{std::vector<int64_t>(size_t(data.k) * data.dim), std::vector<uint64_t>(data.k)};
  for (size_t p = 0; p < data.codes.size(); ++p) {
    const uint32_t c = data.codes[p];
    t.counts[c] += data.weights[p];
    for (int d = 0; d < data.dim; ++d) {
      t.sums[size_t(c) * data.dim + d] +=
          int64_t{data.weights[p]} * fp.quantize(data.points[p * data.dim + d]);
    }
  }
  return t;
}

// Runs accumulate into outputs pre-filled with garbage, which must be overwritten.
Totals run(Backend& backend, const Data& data, const FixedPoint& fp) {
  const auto resident = backend.upload(data.points, data.weights, data.dim);
  Totals t{std::vector<int64_t>(size_t(data.k) * data.dim, -7),
           std::vector<uint64_t>(data.k, 12345)};
  backend.accumulate(*resident, data.codes, fp, t.sums, t.counts);
  return t;
}

TEST(Accumulate, MatchesReferenceOnEveryThreadCount) {
  for (int dim : {1, 4, 5, 16, 32}) {
    const Data data = random_data(1001, dim, 13, 40u + dim);
    const FixedPoint fp = fixed_point_for(data);
    const Totals expected = reference(data, fp);
    for (int threads : {1, 2, 4}) {
      for (bool scalar : {true, false}) {
        auto backend = make_cpu_backend({threads, scalar});
        EXPECT_EQ(run(*backend, data, fp), expected)
            << "dim=" << dim << " threads=" << threads << " " << backend->name();
      }
    }
  }
}

TEST(Accumulate, IndependentOfPointOrder) {
  const Data data = random_data(4099, 8, 31, 3u);
  const FixedPoint fp = fixed_point_for(data);
  Data shuffled = data;
  std::vector<size_t> order(data.codes.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::shuffle(order.begin(), order.end(), std::mt19937(11u));
  for (size_t i = 0; i < order.size(); ++i) {
    shuffled.codes[i] = data.codes[order[i]];
    shuffled.weights[i] = data.weights[order[i]];
    std::copy_n(data.points.begin() + order[i] * data.dim, data.dim,
                shuffled.points.begin() + i * data.dim);
  }
  auto backend = make_cpu_backend({2, false});
  const Totals original = run(*backend, data, fp);
  EXPECT_EQ(run(*backend, shuffled, fp), original);
  EXPECT_EQ(original, reference(data, fp));
}

TEST(Accumulate, CountsWeights) {
  Data data{2, 2, {0.25f, -1.f, 0.75f, 0.5f, 3.f, 3.f}, {3, 1, 2}, {0, 0, 1}};
  const FixedPoint fp{1};  // 2^1: 0.25 -> 0.5 and 0.75 -> 1.5 are both ties
  auto backend = make_cpu_backend({});
  const Totals got = run(*backend, data, fp);
  EXPECT_EQ(got.counts, (std::vector<uint64_t>{4, 2}));
  // Round half to even: q(0.25)=0, q(-1)=-2, q(0.75)=2, q(0.5)=1, q(3)=6.
  EXPECT_EQ(got.sums, (std::vector<int64_t>{3 * 0 + 2, 3 * -2 + 1, 2 * 6, 2 * 6}));
  EXPECT_EQ(got, reference(data, fp));
}

TEST(Accumulate, RejectsCodesOutOfRange) {
  Data data = random_data(20, 3, 4, 9u);
  data.codes[17] = 4;
  auto backend = make_cpu_backend({});
  EXPECT_THROW(run(*backend, data, fixed_point_for(data)), InputError);
  const auto resident = backend->upload(data.points, data.weights, data.dim);
  std::vector<int64_t> sums(4 * 3);
  std::vector<uint64_t> counts(4);
  data.codes[17] = 0;
  std::vector<int64_t> short_sums(5);
  EXPECT_THROW(backend->accumulate(*resident, data.codes, FixedPoint{}, short_sums, counts),
               InputError);
  EXPECT_THROW(
      backend->accumulate(*resident, std::vector<uint32_t>(19, 0), FixedPoint{}, sums, counts),
      InputError);
}

}  // namespace
}  // namespace pgkm
