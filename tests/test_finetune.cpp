// Partitioning-Guided Cluster Fine-tuning (Algorithm 2, Eq. 1) on hand-built states.
#include <gtest/gtest.h>

#include <algorithm>

#include "engine/cluster_state.h"
#include "engine/pg_finetune.h"

namespace pgkm {
namespace {

// 100 distinct 1-D points in [0, 1), all assigned to centroid 0; centroids 1..3
// sit far away and are empty.
struct OneFullCluster {
  PointSet points;
  std::unique_ptr<Backend> backend = make_cpu_backend({.threads = 1});
  std::unique_ptr<ResidentPoints> resident;
  FixedPoint fp;
  SingleProcessCommunicator alone;
  OneFullCluster() {
    points.dim = 1;
    for (int i = 0; i < 100; ++i) {
      points.x.push_back(static_cast<float>(i) / 100.f);
      points.weight.push_back(1);
    }
    resident = backend->upload(points.x, points.weight, 1);
    fp = FixedPoint::for_data(points.max_abs(), points.total_weight());
  }
  ClusterState state() {
    ClusterState s(*backend, *resident, points, fp, 4, alone, {0, points.size()});
    s.centroids = {0.5f, 1000.f, 2000.f, 3000.f};
    s.reassign();
    return s;
  }
};

// Round 1 by hand: layer average 100/4 = 25, populous = {0} (n_w = 100),
// S_avg = 100 / (3 empty + 1 populous) = 25, Eq. 1: S_scl = max(sqrt(100*25), 25) = 50,
// so 100 / 50 = 2 pieces: one goes to the first empty slot (1), the reserved last
// piece to slot 0. Empty clusters fall from 3 to 2.
TEST(Finetune, FirstRoundSplitsByEq1) {
  OneFullCluster f;
  ClusterState s = f.state();
  ASSERT_EQ(s.count_empty(), 3);
  const auto outcome = pg_finetune(s, {.max_rounds = 1});
  EXPECT_EQ(outcome.rounds, 1);
  EXPECT_EQ(s.count_empty(), 2);
  EXPECT_EQ(s.counts[0], 50u);
  EXPECT_EQ(s.counts[1], 50u);
  // The two halves of [0, 1): centroids at the means of 0.00..0.49 and 0.50..0.99.
  const float lo = std::min(s.centroids[0], s.centroids[1]);
  const float hi = std::max(s.centroids[0], s.centroids[1]);
  EXPECT_NEAR(lo, 0.245f, 1e-6f);
  EXPECT_NEAR(hi, 0.745f, 1e-6f);
}

// Round 2: counts {50, 50, 0, 0}, both populous, S_avg = 100 / 4 = 25,
// S_scl = sqrt(50 * 25) = 35.4, ceil(50 / 35.4) = 2 pieces each: no cluster is empty.
TEST(Finetune, SecondRoundResolvesEverything) {
  OneFullCluster f;
  ClusterState s = f.state();
  const auto outcome = pg_finetune(s, {.max_rounds = 15});
  EXPECT_EQ(outcome.rounds, 2);
  EXPECT_EQ(s.count_empty(), 0);
  for (uint64_t c : s.counts)
    EXPECT_EQ(c, 25u);
}

// Identical weights cannot be split: the round makes no progress and the
// resolution stops early instead of spending all 15 rounds.
TEST(Finetune, StopsWhenEmptyCountStopsFalling) {
  PointSet points;
  points.dim = 2;
  points.x = {1.f, 1.f, 5.f, 5.f};
  points.weight = {1000, 1};
  auto backend = make_cpu_backend({.threads = 1});
  auto resident = backend->upload(points.x, points.weight, 2);
  const FixedPoint fp = FixedPoint::for_data(5.f, 1001);
  SingleProcessCommunicator alone;
  ClusterState s(*backend, *resident, points, fp, 3, alone, {0, points.size()});
  s.centroids = {1.f, 1.f, 5.f, 5.f, 100.f, 100.f};
  s.reassign();
  ASSERT_EQ(s.count_empty(), 1);
  const auto outcome = pg_finetune(s, {.max_rounds = 15});
  EXPECT_LE(outcome.rounds, 1);
  EXPECT_EQ(s.count_empty(), 1);
}

TEST(Finetune, NothingToDoWithoutEmptyClusters) {
  OneFullCluster f;
  ClusterState s = f.state();
  s.centroids = {0.1f, 0.4f, 0.6f, 0.9f};
  s.reassign();
  const auto before = s.centroids;
  EXPECT_EQ(pg_finetune(s, {}).rounds, 0);
  EXPECT_EQ(s.centroids, before);
}

}  // namespace
}  // namespace pgkm
