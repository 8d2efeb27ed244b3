// Cases and checks shared by the pruned-search tests (test_pruned_assign.cpp,
// test_pruned_state.cpp): data like trained weights, every kernel path this CPU has, the
// brute-force reference, and bit-for-bit comparison.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "kernels/backend.h"
#include "tests/test_data.h"

namespace pgkm::pruned_test {

// Above this many FMAs (n * k * dim) the scalar kernels are left out: they are slow,
// and the same cases at smaller sizes cover them.
inline constexpr double kScalarBudget = 5e6;

struct Result {
  std::vector<uint32_t> codes;
  std::vector<float> dist;
};

struct Case {
  std::vector<float> points;     // [n, dim]
  std::vector<float> centroids;  // [k, dim]
  int dim = 1;
  size_t n() const { return points.size() / dim; }
  size_t k() const { return centroids.size() / dim; }
};

// count values drawn from N(0, stddev^2).
inline std::vector<float> normal(size_t count, float stddev, uint32_t seed) {
  return testdata::normal(static_cast<int64_t>(count), 1, stddev, seed);
}

// Like trained weights: N(0, 0.02^2) with 0.1% of the values 5-10x larger.
inline std::vector<float> weight_like(size_t count, uint32_t seed) {
  std::vector<float> out = normal(count, 0.02f, seed);
  std::mt19937 rng(seed + 1);
  std::uniform_real_distribution<float> scale(5.f, 10.f);
  std::uniform_int_distribution<size_t> where(0, count - 1);
  for (size_t i = 0; i < count / 1000 + 1; ++i)
    out[where(rng)] *= scale(rng);
  return out;
}

// Every kernel path this CPU has: scalar always, AVX2 and AVX-512 where present.
inline std::vector<std::unique_ptr<Backend>> backends_for(int threads) {
  std::vector<std::unique_ptr<Backend>> out;
  out.push_back(make_cpu_backend({threads, /*force_scalar=*/true}));
  for (CpuIsa isa : {CpuIsa::kAvx2, CpuIsa::kAvx512}) {
    auto simd = make_cpu_backend({threads, false, isa});
    const bool seen = std::any_of(out.begin(), out.end(),
                                  [&](const auto& b) { return b->name() == simd->name(); });
    if (!seen) out.push_back(std::move(simd));
  }
  return out;
}

inline bool cpu_has(const std::string& name) {
  for (const auto& backend : backends_for(1)) {
    if (backend->name() == name) return true;
  }
  return false;
}

inline Result brute(Backend& backend, const Case& c) {
  const auto resident = backend.upload(c.points, std::vector<uint32_t>(c.n(), 1), c.dim);
  Result r{std::vector<uint32_t>(c.n()), std::vector<float>(c.n())};
  backend.assign(*resident, c.centroids, r.codes, r.dist);
  return r;
}

inline Result pruned(Backend& backend, const Case& c, const std::vector<uint32_t>& previous,
                     SearchStats& stats) {
  const auto resident = backend.upload(c.points, std::vector<uint32_t>(c.n(), 1), c.dim);
  Result r{std::vector<uint32_t>(c.n()), std::vector<float>(c.n())};
  backend.assign_pruned(*resident, c.centroids, previous, r.codes, r.dist, stats);
  return r;
}

// The brute-force result every path must reproduce: the scalar kernel where it is
// affordable, else the widest SIMD kernel (test_assign checks it against the contract).
inline Result reference(const Case& c) {
  const auto backends = backends_for(4);
  const bool small = double(c.n()) * c.k() * c.dim <= kScalarBudget;
  return brute(small ? *backends.front() : *backends.back(), c);
}

inline void expect_identical(const Result& got, const Result& want, const std::string& what) {
  ASSERT_EQ(got.codes.size(), want.codes.size()) << what;
  for (size_t p = 0; p < got.codes.size(); ++p) {
    ASSERT_EQ(got.codes[p], want.codes[p]) << what << " point " << p;
    ASSERT_EQ(std::bit_cast<uint32_t>(got.dist[p]), std::bit_cast<uint32_t>(want.dist[p]))
        << what << " point " << p << ": " << got.dist[p] << " vs " << want.dist[p];
  }
}

inline void expect_sane(const SearchStats& s, const Case& c, const std::string& what) {
  EXPECT_EQ(s.points, int64_t(c.n())) << what;
  EXPECT_EQ(s.centroids, int64_t(c.k())) << what;
  EXPECT_EQ(s.full, int64_t(c.n() * c.k())) << what;
  EXPECT_GE(s.scored, std::min<int64_t>(s.points, s.full)) << what;
  EXPECT_LE(s.scored, s.full) << what;
  EXPECT_LE(s.brute_force, s.points) << what;
}

enum class Previous { kCurrent, kStale, kRandom, kZero };

inline std::vector<uint32_t> previous_codes(const Case& c, const Result& want, Previous kind,
                                            uint32_t seed) {
  std::vector<uint32_t> out(c.n(), 0);
  std::mt19937 rng(seed);
  switch (kind) {
    case Previous::kCurrent:
      return want.codes;
    case Previous::kStale: {
      // The codes of slightly different centroids, like the previous k-means pass.
      Case moved = c;
      std::normal_distribution<float> jitter(0.f, 0.3f);
      for (float& v : moved.centroids)
        v += jitter(rng) * std::fabs(v);
      return reference(moved).codes;
    }
    case Previous::kRandom: {
      std::uniform_int_distribution<uint32_t> code(0, uint32_t(c.k()) - 1);
      for (uint32_t& v : out)
        v = code(rng);
      return out;
    }
    case Previous::kZero:
      return out;
  }
  return out;
}

}  // namespace pgkm::pruned_test
