// pipeline/scheduler.h: which rank runs which layer.
#include "pipeline/scheduler.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <limits>
#include <numeric>
#include <random>
#include <vector>

namespace pgkm {
namespace {

std::vector<double> random_costs(size_t n, uint32_t seed) {
  std::mt19937 gen(seed);
  std::lognormal_distribution<double> cost(0.0, 1.5);
  std::vector<double> out(n);
  for (double& c : out)
    c = cost(gen);
  return out;
}

// Every layer appears exactly once: shared, or in one rank's list.
void expect_partition(const Schedule& s, size_t layers, int ranks) {
  ASSERT_EQ(s.by_rank.size(), static_cast<size_t>(ranks));
  std::vector<int> seen(layers, 0);
  for (size_t i : s.shared)
    ++seen[i];
  for (const auto& list : s.by_rank) {
    for (size_t i : list)
      ++seen[i];
  }
  for (size_t i = 0; i < layers; ++i)
    EXPECT_EQ(seen[i], 1) << "layer " << i;
}

TEST(Scheduler, OneRankKeepsPlanOrderAndSharesNothing) {
  const std::vector<double> costs = {1, 50, 3, 50, 2};
  const Schedule s = schedule_layers(costs, 1, 0.0);
  EXPECT_TRUE(s.shared.empty());
  EXPECT_EQ(s.by_rank[0], (std::vector<size_t>{0, 1, 2, 3, 4}));
}

TEST(Scheduler, LongestFirstToTheLeastLoadedRank) {
  const std::vector<double> costs = {6, 8, 2, 7, 3};
  const Schedule s = schedule_layers(costs, 2, std::numeric_limits<double>::infinity());
  EXPECT_TRUE(s.shared.empty());
  // Order by cost: 1 (8), 3 (7), 0 (6), 4 (3), 2 (2).
  // 8 -> r0 [8, 0]; 7 -> r1 [8, 7]; 6 -> r1 [8, 13]; 3 -> r0 [11, 13]; 2 -> r0 [13, 13].
  EXPECT_EQ(s.by_rank[0], (std::vector<size_t>{1, 4, 2}));
  EXPECT_EQ(s.by_rank[1], (std::vector<size_t>{3, 0}));
}

TEST(Scheduler, TiesKeepPlanOrderAndGoToTheLowestRank) {
  const std::vector<double> costs = {5, 5, 5, 5};
  const Schedule s = schedule_layers(costs, 3, std::numeric_limits<double>::infinity());
  EXPECT_EQ(s.by_rank[0], (std::vector<size_t>{0, 3}));
  EXPECT_EQ(s.by_rank[1], (std::vector<size_t>{1}));
  EXPECT_EQ(s.by_rank[2], (std::vector<size_t>{2}));
}

TEST(Scheduler, LayersAboveTheThresholdAreShared) {
  // Total 100 over 2 ranks: a fair share is 50. Threshold 1: only the 60 is shared.
  const std::vector<double> costs = {60, 20, 10, 10};
  Schedule s = schedule_layers(costs, 2, 1.0);
  EXPECT_EQ(s.shared, (std::vector<size_t>{0}));
  expect_partition(s, costs.size(), 2);
  // Threshold 0: everything above 0 is shared, in plan order.
  s = schedule_layers(costs, 2, 0.0);
  EXPECT_EQ(s.shared, (std::vector<size_t>{0, 1, 2, 3}));
  // A threshold no layer reaches: nothing is shared.
  s = schedule_layers(costs, 2, 1.25);
  EXPECT_TRUE(s.shared.empty());
}

TEST(Scheduler, BalancedForOneToEightRanks) {
  for (uint32_t seed = 0; seed < 20; ++seed) {
    const std::vector<double> costs = random_costs(73, seed);
    const double total = std::accumulate(costs.begin(), costs.end(), 0.0);
    for (int ranks = 1; ranks <= 8; ++ranks) {
      const double threshold = 1.0;
      const Schedule s = schedule_layers(costs, ranks, threshold);
      expect_partition(s, costs.size(), ranks);
      double shared = 0, biggest = 0;
      for (size_t i : s.shared) {
        shared += costs[i];
        EXPECT_GT(costs[i], threshold * total / ranks);
      }
      std::vector<double> load(static_cast<size_t>(ranks), 0.0);
      for (int r = 0; r < ranks; ++r) {
        const auto& list = s.by_rank[static_cast<size_t>(r)];
        for (size_t k = 0; k < list.size(); ++k) {
          load[static_cast<size_t>(r)] += costs[list[k]];
          biggest = std::max(biggest, costs[list[k]]);
          if (ranks > 1 && k > 0) EXPECT_GE(costs[list[k - 1]], costs[list[k]]);  // longest first
        }
      }
      // Greedy list scheduling: no rank ends more than one layer past the average.
      const double average = (total - shared) / ranks;
      for (double l : load)
        EXPECT_LE(l, average + biggest + 1e-9) << "seed " << seed << " ranks " << ranks;
    }
  }
}

TEST(Scheduler, SameInputSamePlan) {
  const std::vector<double> costs = random_costs(40, 7);
  const Schedule a = schedule_layers(costs, 4, 1.0);
  const Schedule b = schedule_layers(costs, 4, 1.0);
  EXPECT_EQ(a.shared, b.shared);
  EXPECT_EQ(a.by_rank, b.by_rank);
}

}  // namespace
}  // namespace pgkm
