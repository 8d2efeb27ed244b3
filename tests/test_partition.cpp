// Tests for Partitioning-Guided Pre-assignment (engine/pg_partition.h).
#include "engine/pg_partition.h"

#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <vector>

#include "core/errors.h"

namespace pgkm {
namespace {

PointSet make_points(int dim, std::vector<float> x, std::vector<uint32_t> weight = {}) {
  PointSet points;
  points.dim = dim;
  if (weight.empty()) weight.assign(x.size() / static_cast<size_t>(dim), 1);
  points.x = std::move(x);
  points.weight = std::move(weight);
  return points;
}

// n points with normal(0, 0.02) coordinates (the spread of transformer weights), and
// weights drawn uniformly from [1, max_weight].
PointSet random_points(int64_t n, int dim, uint32_t max_weight, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> coord(0.0f, 0.02f);
  std::uniform_int_distribution<uint32_t> weight(1, max_weight);
  std::vector<float> x(static_cast<size_t>(n) * dim);
  for (float& v : x)
    v = coord(rng);
  std::vector<uint32_t> w(static_cast<size_t>(n));
  for (uint32_t& v : w)
    v = weight(rng);
  return make_points(dim, std::move(x), std::move(w));
}

std::vector<uint32_t> all_members(const PointSet& points) {
  std::vector<uint32_t> members(static_cast<size_t>(points.size()));
  std::iota(members.begin(), members.end(), 0u);
  return members;
}

FixedPoint fixed_point_for(const PointSet& points) {
  return FixedPoint::for_data(points.max_abs(), points.total_weight());
}

std::vector<PartitionPiece> partition(const PointSet& points, std::span<const uint32_t> members,
                                      int64_t k) {
  return partition_guided(points, members, k, fixed_point_for(points));
}

std::vector<PartitionPiece> partition_all(const PointSet& points, int64_t k) {
  return partition(points, all_members(points), k);
}

// Exactly k non-empty pieces, members ascending, together covering `members` once,
// and each piece's weight the sum of its members' weights.
void expect_valid_pieces(const PointSet& points, std::span<const uint32_t> members,
                         const std::vector<PartitionPiece>& pieces, int64_t k) {
  ASSERT_EQ(static_cast<int64_t>(pieces.size()), k);
  std::vector<uint32_t> covered;
  for (const PartitionPiece& piece : pieces) {
    ASSERT_FALSE(piece.members.empty());
    EXPECT_TRUE(std::is_sorted(piece.members.begin(), piece.members.end()));
    uint64_t weight = 0;
    for (uint32_t i : piece.members)
      weight += points.weight[i];
    EXPECT_EQ(piece.weight, weight);
    EXPECT_EQ(piece.centroid.size(), static_cast<size_t>(points.dim));
    covered.insert(covered.end(), piece.members.begin(), piece.members.end());
  }
  std::vector<uint32_t> expected(members.begin(), members.end());
  std::sort(expected.begin(), expected.end());
  std::sort(covered.begin(), covered.end());
  EXPECT_EQ(covered, expected);  // disjoint (no repeats) and covering
}

void expect_same_pieces(const std::vector<PartitionPiece>& a,
                        const std::vector<PartitionPiece>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t p = 0; p < a.size(); ++p) {
    EXPECT_EQ(a[p].members, b[p].members) << "piece " << p;
    EXPECT_EQ(a[p].weight, b[p].weight) << "piece " << p;
    EXPECT_EQ(a[p].centroid, b[p].centroid) << "piece " << p;  // bitwise
  }
}

TEST(PartitionGuided, ExactlyKDisjointNonEmptyPiecesForManyShapes) {
  struct Shape {
    int64_t n;
    int64_t k;
    uint32_t max_weight;
  };
  const Shape shapes[] = {{1, 1, 1},      {7, 1, 1},       {7, 7, 1},       {7, 7, 5},
                          {10, 3, 1},     {100, 6, 1},     {101, 12, 1},    {1000, 12, 3},
                          {997, 96, 1},   {997, 96, 9},    {3000, 3, 20},   {5000, 768, 1},
                          {5000, 769, 4}, {3100, 3072, 1}, {3100, 3072, 7}, {50000, 3072, 2}};
  uint32_t seed = 1;
  for (const Shape& shape : shapes) {
    SCOPED_TRACE(testing::Message()
                 << "n=" << shape.n << " k=" << shape.k << " max_weight=" << shape.max_weight);
    const PointSet points = random_points(shape.n, 4, shape.max_weight, seed++);
    const std::vector<uint32_t> members = all_members(points);
    expect_valid_pieces(points, members, partition(points, members, shape.k), shape.k);
  }
}

TEST(PartitionGuided, PartitionsASubsetOfThePoints) {
  const PointSet points = random_points(2000, 8, 3, 11);
  std::vector<uint32_t> members;
  for (uint32_t i = 0; i < 2000; i += 3)
    members.push_back(i);
  expect_valid_pieces(points, members, partition(points, members, 10), 10);
}

TEST(PartitionGuided, EqualPiecesForUnitWeightsAndPowerOfTwoK) {
  // With k a power of two and k | n every target n * floor(k/2) / k is an integer
  // that is reached exactly, so every piece holds n / k points.
  for (const auto& [n, k] : {std::pair<int64_t, int64_t>{1024, 1024}, {4096, 64}, {12000, 8}}) {
    const PointSet points = random_points(n, 16, 1, static_cast<uint32_t>(k));
    for (const PartitionPiece& piece : partition_all(points, k)) {
      EXPECT_EQ(static_cast<int64_t>(piece.members.size()), n / k) << "n=" << n << " k=" << k;
    }
  }
}

TEST(PartitionGuided, PieceWeightsAreBalanced) {
  // Bound: a node of weight W owing k centroids gives its left child (k_l centroids)
  // weight W*k_l/k + e and its right child (k_r) W*k_r/k - e, |e| <= w_max/2, since
  // consecutive prefix weights differ by at most w_max, unless the cut is clamped.
  // So a child's weight per centroid drifts from its parent's by at most
  // w_max / (2 k_child). Going up from a leaf, each parent owes at least
  // 2 k_child - 1 centroids and a leaf's parent at least 2, so the k_child on a path
  // are at least 1, 2, 3, 5, 9, 17, ..., and the total drift from W/k is at most
  // w_max/2 * (1 + 1/2 + sum_j 1/(2^j + 1)) < 1.14 w_max.
  // The clamp never acts on a node whose weight per centroid is >= 1.5 w_max (the
  // closest prefix then has at least 1.5 k_l - 1/2 >= k_l members, likewise on the
  // right), which holds at every node when W/k >= (1.5 + 1.14) w_max.
  constexpr double kDrift = 1.14;
  struct Case {
    int64_t n;
    int64_t k;
    uint32_t max_weight;
  };
  for (const Case& c :
       {Case{10000, 768, 1}, Case{10007, 3072, 1}, Case{9000, 300, 4}, Case{20000, 1000, 3}}) {
    const PointSet points = random_points(c.n, 4, c.max_weight, static_cast<uint32_t>(c.k));
    const double mean = static_cast<double>(points.total_weight()) / static_cast<double>(c.k);
    ASSERT_GE(mean, 2.64 * c.max_weight);  // the premise of the bound
    for (const PartitionPiece& piece : partition_all(points, c.k)) {
      EXPECT_LE(std::fabs(static_cast<double>(piece.weight) - mean), kDrift * c.max_weight)
          << "n=" << c.n << " k=" << c.k;
    }
  }
}

TEST(PartitionGuided, HandWorkedOneDimensionalExample) {
  // Points {0, 1, 2, 3, 10, 11}: mean 4.5, so 11 (distance 6.5) is farther than 0
  // (4.5). Distances to 11: 11->0, 10->1, 3->8, 2->9, 1->10, 0->11. Target weight
  // 6 * 1 / 2 = 3, so the sphere around 11 takes {11, 10, 3}.
  const PointSet points = make_points(1, {0, 1, 2, 3, 10, 11});
  const std::vector<PartitionPiece> pieces = partition_all(points, 2);
  ASSERT_EQ(pieces.size(), 2u);
  EXPECT_EQ(pieces[0].members, (std::vector<uint32_t>{3, 4, 5}));
  EXPECT_EQ(pieces[1].members, (std::vector<uint32_t>{0, 1, 2}));
  EXPECT_EQ(pieces[0].weight, 3u);
  EXPECT_EQ(pieces[1].weight, 3u);
  EXPECT_EQ(pieces[0].centroid, std::vector<float>{8.0f});
  EXPECT_EQ(pieces[1].centroid, std::vector<float>{1.0f});
}

TEST(PartitionGuided, HandWorkedWeightedExample) {
  // Weights {1,1,1,1,1,5}: mean 71/10 = 7.1, so 0 (distance 7.1) is the far point.
  // In order from 0 the prefix weights are 1,2,3,4,5,10; target 10 * 1/2 = 5 is met
  // by the first five points exactly, leaving 11 alone with weight 5.
  const PointSet points = make_points(1, {0, 1, 2, 3, 10, 11}, {1, 1, 1, 1, 1, 5});
  const std::vector<PartitionPiece> pieces = partition_all(points, 2);
  ASSERT_EQ(pieces.size(), 2u);
  EXPECT_EQ(pieces[0].members, (std::vector<uint32_t>{0, 1, 2, 3, 4}));
  EXPECT_EQ(pieces[1].members, (std::vector<uint32_t>{5}));
  EXPECT_EQ(pieces[0].weight, 5u);
  EXPECT_EQ(pieces[1].weight, 5u);
  EXPECT_FLOAT_EQ(pieces[0].centroid[0], 3.2f);
  EXPECT_EQ(pieces[1].centroid[0], 11.0f);
}

TEST(PartitionGuided, CutIsClampedSoEveryChildCanFillItsCentroids) {
  // Points {0,1,2,3} with weights {1,1,1,100}, k = 3: mean 303/103, far point 0.
  // Prefix weights from 0 are 0,1,2,3,103 against target 103/3 = 34.3, so the
  // closest prefix is 3 members, but the right child owes 2 centroids, so the cut
  // is clamped to 2: {0,1} is the left leaf and {2}, {3} are singletons.
  const PointSet points = make_points(1, {0, 1, 2, 3}, {1, 1, 1, 100});
  const std::vector<PartitionPiece> pieces = partition_all(points, 3);
  ASSERT_EQ(pieces.size(), 3u);
  EXPECT_EQ(pieces[0].members, (std::vector<uint32_t>{0, 1}));
  EXPECT_EQ(pieces[1].members, (std::vector<uint32_t>{2}));
  EXPECT_EQ(pieces[2].members, (std::vector<uint32_t>{3}));
  EXPECT_EQ(pieces[2].weight, 100u);
}

TEST(PartitionGuided, TiesGoToTheShorterPrefixAndTheLowerIndex) {
  // {0, 1, 5}, k = 2: mean 2, far point 5; target 1.5 lies halfway between prefixes
  // of 1 and 2 members, and the tie takes 1.
  const std::vector<PartitionPiece> halfway = partition_all(make_points(1, {0, 1, 5}), 2);
  EXPECT_EQ(halfway[0].members, (std::vector<uint32_t>{2}));
  EXPECT_EQ(halfway[1].members, (std::vector<uint32_t>{0, 1}));

  // {1, -1, 0}: mean 0, points 0 and 1 are equally far, and the lower index wins.
  const std::vector<PartitionPiece> far = partition_all(make_points(1, {1, -1, 0}), 2);
  EXPECT_EQ(far[0].members, (std::vector<uint32_t>{0}));
  EXPECT_EQ(far[1].members, (std::vector<uint32_t>{1, 2}));

  // 2-D: mean (-2.25, 0), far point 2 = (-10, 0); points 0 = (0, 1) and 1 = (0, -1)
  // are both at squared distance 101 from it, and the 2-member sphere takes point 0.
  const PointSet points = make_points(2, {0, 1, 0, -1, -10, 0, 1, 0});
  const std::vector<uint32_t> reversed{3, 2, 1, 0};
  const std::vector<PartitionPiece> pieces = partition(points, reversed, 2);
  EXPECT_EQ(pieces[0].members, (std::vector<uint32_t>{0, 2}));
  EXPECT_EQ(pieces[1].members, (std::vector<uint32_t>{1, 3}));
}

TEST(PartitionGuided, IndependentOfMemberOrder) {
  for (uint32_t max_weight : {1u, 6u}) {
    const PointSet points = random_points(60000, 4, max_weight, 5 + max_weight);
    std::vector<uint32_t> members = all_members(points);
    const std::vector<PartitionPiece> sorted = partition(points, members, 3072);
    std::shuffle(members.begin(), members.end(), std::mt19937(42));
    expect_same_pieces(sorted, partition(points, members, 3072));
    std::reverse(members.begin(), members.end());
    expect_same_pieces(sorted, partition(points, members, 3072));
  }
}

TEST(PartitionGuided, IndependentOfThreadCount) {
  // 100000 points exceed the size at which a node's distance passes run in parallel.
  for (uint32_t max_weight : {1u, 3u}) {
    const PointSet points = random_points(100000, 16, max_weight, 9);
    const int threads = omp_get_max_threads();
    omp_set_num_threads(1);
    const std::vector<PartitionPiece> one = partition_all(points, 96);
    omp_set_num_threads(2);
    const std::vector<PartitionPiece> two = partition_all(points, 96);
    omp_set_num_threads(4);
    const std::vector<PartitionPiece> four = partition_all(points, 96);
    omp_set_num_threads(threads);
    expect_same_pieces(one, two);
    expect_same_pieces(one, four);
  }
}

TEST(PartitionGuided, CentroidsAreTheExactWeightedMeans) {
  const PointSet points = random_points(5000, 8, 5, 21);
  const FixedPoint fp = fixed_point_for(points);
  const std::vector<PartitionPiece> pieces = partition_guided(points, all_members(points), 37, fp);
  std::vector<float> exact(8);
  for (const PartitionPiece& piece : pieces) {
    exact_mean(points, piece.members, fp, exact);
    EXPECT_EQ(piece.centroid, exact);
    for (int j = 0; j < 8; ++j) {
      double sum = 0.0;
      for (uint32_t i : piece.members)
        sum += static_cast<double>(points.weight[i]) * points.row(i)[j];
      const double mean = sum / static_cast<double>(piece.weight);
      // One float rounding of a value below max_abs, plus the fixed-point rounding.
      EXPECT_NEAR(piece.centroid[j], mean, 2e-7 * points.max_abs());
    }
  }
}

TEST(PartitionGuided, NoEmptyClustersForHeavilyDuplicatedData) {
  // 10000 raw vectors drawn from 300 distinct values, deduplicated into weighted
  // points: the pre-assignment must give every one of k = 256 clusters a point.
  std::mt19937 rng(7);
  std::normal_distribution<float> coord(0.0f, 0.02f);
  std::vector<float> values(300 * 4);
  for (float& v : values)
    v = coord(rng);
  std::uniform_int_distribution<int> pick(0, 299);
  std::vector<float> raw;
  for (int i = 0; i < 10000; ++i) {
    const int v = i < 300 ? i : pick(rng);  // every value occurs at least once
    raw.insert(raw.end(), values.begin() + 4 * v, values.begin() + 4 * v + 4);
  }
  const Deduplicated dedup = deduplicate(raw, 4);
  ASSERT_EQ(dedup.points.size(), 300);
  for (int64_t k : {256, 299, 300}) {
    const std::vector<uint32_t> members = all_members(dedup.points);
    const std::vector<PartitionPiece> pieces = partition(dedup.points, members, k);
    expect_valid_pieces(dedup.points, members, pieces, k);
    uint64_t weight = 0;
    for (const PartitionPiece& piece : pieces)
      weight += piece.weight;
    EXPECT_EQ(weight, 10000u);
  }
}

TEST(PartitionGuided, RejectsBadArguments) {
  const PointSet points = random_points(10, 2, 1, 3);
  const FixedPoint fp = fixed_point_for(points);
  const std::vector<uint32_t> members = all_members(points);
  EXPECT_THROW(partition_guided(points, members, 0, fp), InputError);
  EXPECT_THROW(partition_guided(points, members, 11, fp), InputError);
  EXPECT_THROW(partition_guided(points, {}, 1, fp), InputError);
  const std::vector<uint32_t> out_of_range{0, 1, 10};
  EXPECT_THROW(partition_guided(points, out_of_range, 2, fp), InputError);
  const std::vector<uint32_t> repeated{0, 1, 1};
  EXPECT_THROW(partition_guided(points, repeated, 2, fp), InputError);
  PointSet with_nan = points;
  with_nan.x[5] = std::nanf("");
  EXPECT_THROW(partition_guided(with_nan, members, 2, fp), InputError);
  PointSet with_zero_weight = points;
  with_zero_weight.weight[3] = 0;
  EXPECT_THROW(partition_guided(with_zero_weight, members, 2, fp), InputError);
}

}  // namespace
}  // namespace pgkm
