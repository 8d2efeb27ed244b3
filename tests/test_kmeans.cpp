// The k-means driver and the three algorithms, end to end on synthetic layers.
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <set>

#include "engine/kmeans.h"
#include "tests/test_data.h"

namespace pgkm {
namespace {

KMeansResult run(Algorithm a, const std::vector<float>& v, int dim, int64_t k, int threads = 1,
                 uint64_t seed = 7, int iterations = 15) {
  auto backend = make_cpu_backend({.threads = threads});
  KMeansParams p;
  p.algorithm = a;
  p.n_centroids = k;
  p.iterations = iterations;
  p.seed = seed;
  return run_kmeans(*backend, p, "encoder.layer.0.fc1", v, dim);
}

// Sum of squared errors recomputed in the test from codes and centroids, in double.
double sse(const std::vector<float>& v, int dim, const KMeansResult& r) {
  double total = 0;
  for (size_t i = 0; i < r.codes.size(); ++i) {
    for (int d = 0; d < dim; ++d) {
      const double t =
          static_cast<double>(v[i * static_cast<size_t>(dim) + static_cast<size_t>(d)]) -
          r.centroids[r.codes[i] * static_cast<size_t>(dim) + static_cast<size_t>(d)];
      total += t * t;
    }
  }
  return total;
}

constexpr Algorithm kAll[] = {Algorithm::kIpq, Algorithm::kPgBase, Algorithm::kPg};

TEST(KMeans, ResultIsConsistent) {
  const auto v = testdata::normal(3000, 4, 0.02f, 1);
  for (Algorithm a : kAll) {
    const auto r = run(a, v, 4, 64);
    ASSERT_EQ(r.codes.size(), 3000u) << algorithm_name(a);
    ASSERT_EQ(r.centroids.size(), 64u * 4);
    uint64_t total = 0;
    for (uint64_t c : r.counts)
      total += c;
    EXPECT_EQ(total, 3000u);
    EXPECT_EQ(*std::max_element(r.codes.begin(), r.codes.end()) < 64, true);
    EXPECT_EQ(r.empty_clusters, std::count(r.counts.begin(), r.counts.end(), 0u));
    // The reported objective is the true squared error of the returned codes.
    EXPECT_NEAR(r.objective, sse(v, 4, r), 1e-9 * sse(v, 4, r)) << algorithm_name(a);
    EXPECT_EQ(r.iterations_run, 15);
    ASSERT_EQ(r.per_iteration.size(), 15u);
    if (a == Algorithm::kPg) {
      // pg ends with one update over the original weights, which can only lower it.
      EXPECT_LE(r.objective, r.per_iteration.back().objective);
    } else {
      EXPECT_EQ(r.objective, r.per_iteration.back().objective) << algorithm_name(a);
    }
  }
}

// Lloyd's algorithm never raises the objective: assignment to the nearest centroid
// and the mean update each can only lower it. Tolerance: the expanded-form distance
// (x.c - |c|^2/2 in float) can pick a centroid whose true distance is larger by a
// few float ulps of |x|^2, far below 1e-6 of the objective.
TEST(KMeans, LloydIterationsNeverRaiseTheObjective) {
  const auto v = testdata::normal(4000, 8, 0.02f, 2);
  for (Algorithm a : {Algorithm::kIpq, Algorithm::kPgBase}) {
    const auto r = run(a, v, 8, 32);
    for (size_t i = 1; i < r.per_iteration.size(); ++i) {
      if (r.per_iteration[i].resolution_rounds > 0) continue;  // a split may cost a little
      EXPECT_LE(r.per_iteration[i].objective, r.per_iteration[i - 1].objective * (1 + 1e-6))
          << algorithm_name(a) << " iteration " << i;
    }
    EXPECT_LT(r.per_iteration.back().objective, r.per_iteration.front().objective);
  }
}

TEST(KMeans, SameSeedSameBitsAnyThreadCount) {
  const auto v = testdata::normal(5000, 8, 0.02f, 3);
  for (Algorithm a : kAll) {
    const auto one = run(a, v, 8, 100, 1);
    for (int threads : {2, 4}) {
      omp_set_num_threads(threads);
      const auto many = run(a, v, 8, 100, threads);
      EXPECT_EQ(one.codes, many.codes) << algorithm_name(a) << " threads " << threads;
      EXPECT_EQ(one.centroids, many.centroids) << algorithm_name(a);
      EXPECT_EQ(one.objective, many.objective) << algorithm_name(a);
    }
    omp_set_num_threads(1);
  }
  // The seed matters where randomness is used (ipq's init and resolution).
  EXPECT_NE(run(Algorithm::kIpq, v, 8, 100, 1, 7).codes,
            run(Algorithm::kIpq, v, 8, 100, 1, 8).codes);
}

// On data built to starve clusters, fairseq's heuristic keeps splitting the most
// populated cluster, which is one duplicated vector and cannot be split, so its
// tries run out and it stops with empty clusters. PG resolves them by splitting
// clusters that can be split, and its objective is no worse.
TEST(KMeans, PgResolvesWhatIpqCannot) {
  const auto v = testdata::starving(4, 4);
  const auto ipq = run(Algorithm::kIpq, v, 4, 64);
  EXPECT_GT(ipq.empty_clusters, 0);
  EXPECT_TRUE(ipq.stopped_early);
  EXPECT_NE(ipq.stop_reason.find("stopped iterating as fairseq does"), std::string::npos);
  for (Algorithm a : {Algorithm::kPgBase, Algorithm::kPg}) {
    const auto pg = run(a, v, 4, 64);
    EXPECT_EQ(pg.empty_clusters, 0) << algorithm_name(a);
    EXPECT_LE(pg.objective, ipq.objective) << algorithm_name(a);
    EXPECT_FALSE(pg.stopped_early);
  }
}

// Pre-assignment starts with zero empty clusters whenever there are at least K
// distinct vectors, duplicates or not; random init with replacement does not.
TEST(KMeans, PreAssignmentStartsWithNoEmptyCluster) {
  const auto v = testdata::starving(4, 5);  // 508 distinct vectors in 8600
  const auto pg = run(Algorithm::kPgBase, v, 4, 256, 1, 7, 0);
  EXPECT_EQ(pg.initial_empty, 0);
  EXPECT_EQ(pg.distinct_vectors, 508);
  const auto ipq = run(Algorithm::kIpq, v, 4, 256, 1, 7, 0);
  EXPECT_GT(ipq.initial_empty, 0);
}

// Dense groups: consolidation turns each group's near-identical members into few
// points, the background stays, and the mapping back covers every weight.
TEST(KMeans, PgConsolidatesDenseWeights) {
  const auto v = testdata::dense_groups(4000, 20, 100, 4, 6);
  const auto pg = run(Algorithm::kPg, v, 4, 64);
  EXPECT_LT(pg.clustered_points, pg.distinct_vectors - 20 * 90);
  EXPECT_GE(pg.clustered_points, 2 * 64);  // Eq. 2 floor: c_mc * K
  EXPECT_EQ(pg.codes.size(), 6000u);
  EXPECT_EQ(pg.empty_clusters, 0);
  // Each dense group shares one code.
  for (int g = 0; g < 20; ++g) {
    const size_t first = 4000 + static_cast<size_t>(g) * 100;
    for (size_t i = first; i < first + 100; ++i)
      EXPECT_EQ(pg.codes[i], pg.codes[first]);
  }
}

TEST(KMeans, ZeroIterationsStillReturnsValidCodes) {
  const auto v = testdata::normal(500, 4, 0.02f, 8);
  for (Algorithm a : kAll) {
    const auto r = run(a, v, 4, 16, 1, 7, 0);
    EXPECT_EQ(r.iterations_run, 0);
    EXPECT_NEAR(r.objective, sse(v, 4, r), 1e-9 * sse(v, 4, r));
  }
}

}  // namespace
}  // namespace pgkm
