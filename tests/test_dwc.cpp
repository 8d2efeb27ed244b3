// Dense Weights Consolidation (engine/dwc.cpp): cluster finding on hand-built data
// where the answer is known, agreement with a plain transcription of Algorithms 4
// and 5, Eq. 2's epsilon schedule, output weights and means, determinism across
// runs and thread counts, the identity fallback and input errors.
#include "engine/dwc.h"

#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <map>
#include <random>
#include <utility>
#include <vector>

#include "core/errors.h"

namespace pgkm {
namespace {

PointSet make_points(int dim, const std::vector<float>& x, std::vector<uint32_t> weight = {}) {
  PointSet p;
  p.dim = dim;
  p.x = x;
  p.weight = weight.empty() ? std::vector<uint32_t>(x.size() / dim, 1) : std::move(weight);
  return p;
}

FixedPoint fixed_point_for(const PointSet& p) {
  return FixedPoint::for_data(p.max_abs(), p.total_weight());
}

// The initial_epsilon_scale that makes the first epsilon equal `eps`, computed
// independently of dwc.cpp from the documented formula rms * K^(-1/dim).
double scale_for_epsilon(const PointSet& p, int64_t k, double eps) {
  std::vector<double> mean(p.dim, 0.0);
  double total = 0.0;
  for (int64_t i = 0; i < p.size(); ++i) {
    for (int j = 0; j < p.dim; ++j)
      mean[j] += p.weight[i] * double{p.row(i)[j]};
    total += p.weight[i];
  }
  double sum_sq = 0.0;
  for (int64_t i = 0; i < p.size(); ++i) {
    for (int j = 0; j < p.dim; ++j) {
      const double d = p.row(i)[j] - mean[j] / total;
      sum_sq += p.weight[i] * d * d;
    }
  }
  return eps / (std::sqrt(sum_sq / total) * std::pow(double(k), -1.0 / p.dim));
}

double dist(const PointSet& a, int64_t i, const PointSet& b, int64_t j) {
  double s = 0.0;
  for (int d = 0; d < a.dim; ++d) {
    const double diff = double{a.row(i)[d]} - double{b.row(j)[d]};
    s += diff * diff;
  }
  return std::sqrt(s);
}

// Input indices grouped by the output point they map to.
std::map<uint32_t, std::vector<uint32_t>> groups_of(const DwcResult& r) {
  std::map<uint32_t, std::vector<uint32_t>> g;
  for (size_t i = 0; i < r.input_to_point.size(); ++i)
    g[r.input_to_point[i]].push_back(i);
  return g;
}

// Checks everything a consolidation must satisfy whatever the data: complete
// mapping onto every output point, a confirming anchor within final_epsilon of all
// members of each dense cluster, exact means, copied independents, and weights.
void expect_valid(const PointSet& in, const DwcResult& r, const DwcParams& params) {
  ASSERT_EQ(r.input_to_point.size(), static_cast<size_t>(in.size()));
  ASSERT_EQ(r.points.dim, in.dim);
  ASSERT_EQ(r.points.x.size(), r.points.weight.size() * in.dim);
  const auto groups = groups_of(r);
  ASSERT_EQ(groups.size(), static_cast<size_t>(r.points.size()));  // every point is used
  EXPECT_EQ(r.dense_clusters + r.independent_points, r.points.size());
  int64_t dense = 0;
  uint32_t previous_first = 0;
  const FixedPoint fp = fixed_point_for(in);
  for (const auto& [out, members] : groups) {
    ASSERT_LT(out, r.points.size());
    if (out > 0) {
      EXPECT_GT(members.front(), previous_first) << "order by smallest input index";
    }
    previous_first = members.front();
    uint64_t weight = 0;
    for (uint32_t m : members)
      weight += in.weight[m];
    EXPECT_EQ(r.points.weight[out], params.count_weighted ? weight : 1u);
    if (members.size() == 1) {
      EXPECT_EQ(dist(in, members[0], r.points, out), 0.0) << "independent point is copied";
      continue;
    }
    ++dense;
    bool has_anchor = false;
    for (uint32_t a : members) {
      bool all_close = true;
      for (uint32_t m : members)
        all_close = all_close && dist(in, a, in, m) <= r.final_epsilon;
      has_anchor = has_anchor || all_close;
    }
    EXPECT_TRUE(has_anchor) << "dense cluster at output " << out << " has no anchor";
    std::vector<float> mean(in.dim);
    exact_mean(in, members, fp, mean);
    for (int d = 0; d < in.dim; ++d)
      EXPECT_EQ(r.points.row(out)[d], mean[d]);
  }
  EXPECT_EQ(dense, r.dense_clusters);
}

// Three tight groups and isolated points in 2-D; groups A and B lie at the same
// distance (10) from the anchor, so they share a ring and need the recursion.
TEST(Dwc, FindsHandBuiltDenseClusters) {
  const PointSet in = make_points(2, {
                                         0.0f,  0.0f,  0.1f,  0.0f,  0.0f,  0.3f,   // near anchor
                                         5.0f,  5.0f,  -8.0f, 3.0f,                 // isolated
                                         10.0f, 0.0f,  10.2f, 0.0f,  10.0f, 0.2f,   // group A
                                         0.0f,  10.0f, 0.2f,  10.0f, 0.0f,  10.2f,  // group B
                                         20.0f, 20.0f, 20.3f, 20.0f, 20.0f, 20.2f,  // group C
                                         30.0f, -5.0f,                              // isolated
                                     });
  DwcParams params;
  params.initial_epsilon_scale = scale_for_epsilon(in, 3, 0.5);
  const DwcResult r = consolidate_dense_weights(in, 3, params, fixed_point_for(in), "hand");
  EXPECT_NEAR(r.initial_epsilon, 0.5, 1e-12);
  EXPECT_EQ(r.epsilon_updates, 0);  // n_cw = 7 >= c_mc * K = 6
  EXPECT_EQ(r.dense_clusters, 4);
  EXPECT_EQ(r.independent_points, 3);
  const std::vector<std::vector<uint32_t>> expected = {{0, 1, 2},  {3},          {4}, {5, 6, 7},
                                                       {8, 9, 10}, {11, 12, 13}, {14}};
  std::vector<std::vector<uint32_t>> got;
  for (const auto& [out, members] : groups_of(r))
    got.push_back(members);
  EXPECT_EQ(got, expected);
  expect_valid(in, r, params);
}

// 2048 points at 0, 1, ..., 2047 (point 0, the anchor, at 0; the others in
// shuffled order): at epsilon e every run of floor(e) + 1 consecutive values
// becomes one cluster, so n_cw = ceil(2048 / (floor(e) + 1)). With K = 256
// (c_mc * K = 512), 10 -> 8 -> 6.4 -> 5.12 -> 4.096 all give n_cw <= 410, and
// 3.2768 gives 512. Sorting these integer distances takes an odd number of radix
// passes.
TEST(Dwc, Eq2ShrinksEpsilonUntilEnoughPointsRemain) {
  std::vector<float> x;
  for (int i = 0; i < 2048; ++i) {
    x.push_back(static_cast<float>(i));
  }
  std::mt19937 gen(5);
  std::shuffle(x.begin() + 1, x.end(), gen);
  const PointSet in = make_points(1, x);
  const FixedPoint fp = fixed_point_for(in);
  DwcParams params;
  params.initial_epsilon_scale = scale_for_epsilon(in, 256, 10.0);
  const DwcResult r = consolidate_dense_weights(in, 256, params, fp, "line");
  EXPECT_EQ(r.epsilon_updates, 5);
  double expected = r.initial_epsilon;
  for (int u = 0; u < r.epsilon_updates; ++u)
    expected *= params.c_sd;
  EXPECT_EQ(r.final_epsilon, expected);
  EXPECT_EQ(r.points.size(), 512);
  EXPECT_GE(r.points.size(), params.c_mc * 256);
  expect_valid(in, r, params);

  // The epsilon before the last update alone (no updates allowed) is too coarse,
  // so the loop stopped at the first acceptable epsilon; the bound shows.
  DwcParams previous = params;
  previous.initial_epsilon_scale = scale_for_epsilon(in, 256, r.final_epsilon / params.c_sd);
  previous.max_epsilon_updates = 0;
  const DwcResult p = consolidate_dense_weights(in, 256, previous, fp, "line");
  EXPECT_EQ(p.epsilon_updates, 0);
  EXPECT_LT(p.points.size(), params.c_mc * 256);
  expect_valid(in, p, previous);
}

TEST(Dwc, WeightsAndMeansOfConsolidatedPoints) {
  // Group {0, 1, 2} with weights 3, 5, 2; isolated points of weight 4 and 1.
  const PointSet in = make_points(2, {1.0f, 1.0f, 1.25f, 1.0f, 1.0f, 1.5f, 9.0f, 9.0f, -9.0f, 9.0f},
                                  {3, 5, 2, 4, 1});
  DwcParams params;
  params.c_mc = 1.0;
  params.initial_epsilon_scale = scale_for_epsilon(in, 3, 1.0);
  for (bool count_weighted : {false, true}) {
    params.count_weighted = count_weighted;
    const DwcResult r = consolidate_dense_weights(in, 3, params, fixed_point_for(in), "w");
    ASSERT_EQ(r.points.size(), 3);
    EXPECT_EQ(r.points.weight, count_weighted ? std::vector<uint32_t>({10, 4, 1})
                                              : std::vector<uint32_t>({1, 1, 1}));
    // The weighted mean, (3*1 + 5*1.25 + 2*1) / 10 and (3*1 + 5*1 + 2*1.5) / 10.
    EXPECT_FLOAT_EQ(r.points.row(0)[0], 1.125f);
    EXPECT_FLOAT_EQ(r.points.row(0)[1], 1.1f);
    EXPECT_EQ(r.input_to_point, std::vector<uint32_t>({0, 0, 0, 1, 2}));
    expect_valid(in, r, params);
  }
}

// The last segment of the sorted distances is closed too: a dense group and a
// lone point farthest from the anchor are both kept.
TEST(Dwc, ClosesTheLastSegment) {
  const PointSet group_last = make_points(1, {0.0f, 5.0f, 100.0f, 100.1f, 100.2f});
  const PointSet lone_last = make_points(1, {0.0f, 0.1f, 5.0f, 50.0f});
  DwcParams params;
  params.c_mc = 1.0;
  params.initial_epsilon_scale = scale_for_epsilon(group_last, 1, 0.5);
  DwcResult r = consolidate_dense_weights(group_last, 1, params, fixed_point_for(group_last), "t");
  EXPECT_EQ(r.dense_clusters, 1);
  EXPECT_EQ(r.input_to_point, std::vector<uint32_t>({0, 1, 2, 2, 2}));
  expect_valid(group_last, r, params);

  params.initial_epsilon_scale = scale_for_epsilon(lone_last, 1, 0.5);
  r = consolidate_dense_weights(lone_last, 1, params, fixed_point_for(lone_last), "t");
  EXPECT_EQ(r.input_to_point, std::vector<uint32_t>({0, 0, 1, 2}));
  expect_valid(lone_last, r, params);
}

// Normal(0, 0.02) data plus tight blobs, as in real weight layers.
PointSet noisy_points(int64_t n, int dim, uint32_t seed) {
  std::mt19937 gen(seed);
  std::normal_distribution<float> wide(0.0f, 0.02f);
  std::normal_distribution<float> tight(0.0f, 0.0005f);
  std::uniform_int_distribution<uint32_t> weight(1, 4);
  std::vector<float> x;
  std::vector<uint32_t> w;
  std::vector<float> centre(dim);
  for (int64_t i = 0; i < n; ++i) {
    const bool blob = i % 2 == 1;
    if (i % 40 == 1) {
      for (float& c : centre)
        c = wide(gen);
    }
    for (int d = 0; d < dim; ++d)
      x.push_back(blob ? centre[d] + tight(gen) : wide(gen));
    w.push_back(weight(gen));
  }
  return make_points(dim, x, w);
}

TEST(Dwc, RandomDataIsValidAndDeterministic) {
  const PointSet in = noisy_points(20000, 4, 7);
  DwcParams params;
  params.count_weighted = true;
  const FixedPoint fp = fixed_point_for(in);
  omp_set_num_threads(1);
  const DwcResult one = consolidate_dense_weights(in, 256, params, fp, "rand");
  omp_set_num_threads(2);
  const DwcResult two = consolidate_dense_weights(in, 256, params, fp, "rand");
  const DwcResult again = consolidate_dense_weights(in, 256, params, fp, "rand");
  EXPECT_GT(one.dense_clusters, 100);  // the blobs are found
  EXPECT_GE(one.points.size(), params.c_mc * 256);
  expect_valid(in, one, params);
  for (const DwcResult* other : {&two, &again}) {
    EXPECT_EQ(one.points.x, other->points.x);
    EXPECT_EQ(one.points.weight, other->points.weight);
    EXPECT_EQ(one.input_to_point, other->input_to_point);
    EXPECT_EQ(one.final_epsilon, other->final_epsilon);
    EXPECT_EQ(one.epsilon_updates, other->epsilon_updates);
  }
}

// A direct transcription of Algorithms 4 and 5 (native recursion, std::sort by
// (distance, index), the last segment closed) to check the engine's explicit
// stack, radix sort, row buffers and threads against. Appends dense clusters.
void reference_task(const PointSet& p, const std::vector<uint32_t>& task, double eps,
                    std::vector<std::vector<uint32_t>>& dense) {
  std::vector<std::pair<double, uint32_t>> d;
  for (uint32_t i : task)
    d.push_back({dist(p, task[0], p, i), i});
  std::sort(d.begin(), d.end());
  size_t s = 0;
  for (size_t i = 1; i <= d.size(); ++i) {
    if (i < d.size() && d[i].first - d[s].first <= eps) continue;
    std::vector<uint32_t> segment;
    for (size_t k = s; k < i; ++k)
      segment.push_back(d[k].second);
    if (segment.size() > 1 && s == 0) {
      std::sort(segment.begin(), segment.end());
      dense.push_back(segment);
    } else if (segment.size() > 1) {
      reference_task(p, segment, eps, dense);
    }
    s = i;
  }
}

// A shuffled 3-D integer lattice of (2 * half + 1)^3 points; with centre_first the
// origin is moved to the front, so the anchor's rings are whole spherical shells.
PointSet shuffled_lattice(int half, uint32_t seed, bool centre_first = false) {
  std::vector<std::array<float, 3>> cells;
  for (int a = -half; a <= half; ++a) {
    for (int b = -half; b <= half; ++b) {
      for (int c = -half; c <= half; ++c)
        cells.push_back({float(a), float(b), float(c)});
    }
  }
  std::mt19937 gen(seed);
  std::shuffle(cells.begin(), cells.end(), gen);
  if (centre_first) {
    const std::array<float, 3> origin{0.f, 0.f, 0.f};
    std::swap(*std::find(cells.begin(), cells.end(), origin), cells.front());
  }
  std::vector<float> x;
  for (const auto& cell : cells)
    x.insert(x.end(), cell.begin(), cell.end());
  return make_points(3, x);
}

// Consolidates a lattice at epsilon `eps` and checks the dense clusters against
// reference_task.
void expect_lattice_matches_reference(const PointSet& in, double eps) {
  DwcParams params;
  params.c_mc = 1.0;
  params.initial_epsilon_scale = scale_for_epsilon(in, 1, eps);
  const DwcResult r = consolidate_dense_weights(in, 1, params, fixed_point_for(in), "lattice");
  std::vector<uint32_t> all(in.size());
  for (size_t i = 0; i < all.size(); ++i)
    all[i] = i;
  std::vector<std::vector<uint32_t>> expected;
  reference_task(in, all, r.final_epsilon, expected);
  std::vector<std::vector<uint32_t>> got;
  for (const auto& [out, members] : groups_of(r)) {
    if (members.size() > 1) got.push_back(members);
  }
  std::sort(expected.begin(), expected.end());
  EXPECT_GT(expected.size(), 100u);
  EXPECT_EQ(got, expected);
  expect_valid(in, r, params);
}

// Many exact distance ties, so ring anchors depend on the (distance, index)
// tie-break, and rings of over 1024 points, so the radix sort meets ties in input
// that is not in index order.
TEST(Dwc, MatchesReferenceOnDataWithTies) {
  expect_lattice_matches_reference(shuffled_lattice(12, 11), 1.5);
}

// The same with shells (rings) of over 2^15 points, which every thread sorts
// together.
TEST(Dwc, MatchesReferenceOnDataWithTiesAtEveryThreadCount) {
  const PointSet in = shuffled_lattice(24, 12, true);
  const int threads = omp_get_max_threads();
  for (int t : {1, 2, 4}) {
    omp_set_num_threads(t);
    expect_lattice_matches_reference(in, 6.0);
  }
  omp_set_num_threads(threads);
}

TEST(Dwc, TooFewPointsForEq2ReturnsInput) {
  const PointSet in = make_points(1, {0.0f, 0.01f, 0.02f, 5.0f}, {2, 1, 3, 1});
  const DwcResult r = consolidate_dense_weights(in, 4, DwcParams{}, fixed_point_for(in), "few");
  EXPECT_EQ(r.points.x, in.x);
  EXPECT_EQ(r.points.weight, in.weight);
  EXPECT_EQ(r.input_to_point, std::vector<uint32_t>({0, 1, 2, 3}));
  EXPECT_EQ(r.dense_clusters, 0);
  EXPECT_EQ(r.independent_points, 4);
  EXPECT_EQ(r.epsilon_updates, 0);
}

TEST(Dwc, RejectsBadInputNamingTheLayer) {
  const PointSet good = make_points(2, {0.0f, 0.0f, 1.0f, 1.0f});
  const FixedPoint fp = fixed_point_for(good);
  PointSet bad_dim = good;
  bad_dim.dim = 3;
  DwcParams bad_sd;
  bad_sd.c_sd = 1.0;
  const auto expect_error = [&](const PointSet& p, int64_t k, const DwcParams& params) {
    try {
      consolidate_dense_weights(p, k, params, fp, "layer.7");
      ADD_FAILURE() << "no InputError";
    } catch (const InputError& e) {
      EXPECT_EQ(e.context(), "layer.7");
    }
  };
  expect_error(make_points(2, {}), 1, DwcParams{});
  expect_error(bad_dim, 1, DwcParams{});
  expect_error(good, 0, DwcParams{});
  expect_error(good, 1, bad_sd);
}

}  // namespace
}  // namespace pgkm
