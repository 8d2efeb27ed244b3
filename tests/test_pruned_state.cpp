// The pruned search's interface and the state it keeps (CPU backend): codes updated in
// place, the fused variant, the sorted points and sums kept between passes, passes that
// ask for no distances, and argument checks. Every result is brute force's, bit for bit.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "core/errors.h"
#include "kernels/backend.h"
#include "kernels/fixed_point.h"
#include "tests/pruned_test_util.h"

namespace pgkm {
namespace {

using namespace pruned_test;  // NOLINT(google-build-using-namespace)

TEST(PrunedAssign, PreviousMayBeTheCodesArray) {
  Case c{weight_like(5000 * 4, 51u), weight_like(300 * 4, 52u), 4};
  const Result want = reference(c);
  for (const auto& backend : backends_for(2)) {
    const auto resident = backend->upload(c.points, std::vector<uint32_t>(c.n(), 1), c.dim);
    Result got{previous_codes(c, want, Previous::kStale, 3u), std::vector<float>(c.n())};
    SearchStats stats;
    backend->assign_pruned(*resident, c.centroids, got.codes, got.codes, got.dist, stats);
    expect_identical(got, want, backend->name() + " in place");
  }
}

TEST(PrunedAssign, FusedVariantMatchesAssignAccumulate) {
  Case c{weight_like(4000 * 8, 61u), weight_like(128 * 8, 62u), 8};
  const auto fp = FixedPoint::for_data(1.0, c.n());
  for (const auto& backend : backends_for(2)) {
    const auto resident = backend->upload(c.points, std::vector<uint32_t>(c.n(), 1), c.dim);
    std::vector<uint32_t> codes(c.n()), codes2(c.n(), 0);
    std::vector<float> dist(c.n()), dist2(c.n());
    std::vector<int64_t> sums(c.k() * 8), sums2(c.k() * 8);
    std::vector<uint64_t> counts(c.k()), counts2(c.k());
    backend->assign_accumulate(*resident, c.centroids, fp, codes, dist, sums, counts);
    SearchStats stats;
    backend->assign_accumulate_pruned(*resident, c.centroids, codes2, fp, codes2, dist2, sums2,
                                      counts2, stats);
    EXPECT_EQ(codes, codes2) << backend->name();
    EXPECT_EQ(sums, sums2) << backend->name();
    EXPECT_EQ(counts, counts2) << backend->name();
  }
}

// The search keeps the points sorted by code, and the fused pass the sums, between
// passes on one resident set (a cache). Every pass must still give the brute-force
// codes, distances, sums and counts, whether the cache fits the previous codes (a
// Lloyd run), does not (codes from elsewhere), or the fixed-point scale changed; with
// weights other than 1, so that moving a point moves its weight.
TEST(PrunedAssign, StateKeptBetweenPassesNeverChangesAResult) {
  for (int dim : {4, 8}) {
    const size_t n = 12000;
    const size_t k = 256;
    Case c{weight_like(n * dim, 71u + dim), std::vector<float>(k * dim), dim};
    for (size_t j = 0; j < k; ++j)
      std::copy_n(c.points.begin() + (j * 4001 % n) * dim, dim, c.centroids.begin() + j * dim);
    std::vector<uint32_t> weights(n);
    for (size_t p = 0; p < n; ++p)
      weights[p] = 1 + static_cast<uint32_t>(p % 5);
    for (const auto& backend : backends_for(2)) {
      const auto resident = backend->upload(c.points, weights, dim);
      const auto fresh = backend->upload(c.points, weights, dim);
      Case run = c;
      std::vector<uint32_t> codes(n, 0);
      std::vector<float> dist(n);
      for (int step = 0; step < 8; ++step) {
        const std::string label =
            backend->name() + " dim=" + std::to_string(dim) + " step=" + std::to_string(step);
        // Step 4 hands codes the cache has not seen; step 6 a different scale.
        if (step == 4) codes = previous_codes(run, {codes, dist}, Previous::kRandom, 7u);
        const FixedPoint fp = FixedPoint::for_data(step == 6 ? 0.5 : 1.0, 5 * n);
        std::vector<uint32_t> want_codes(n);
        std::vector<float> want_dist(n);
        std::vector<int64_t> want_sums(k * dim), sums(k * dim);
        std::vector<uint64_t> want_counts(k), counts(k);
        backend->assign_accumulate(*fresh, run.centroids, fp, want_codes, want_dist, want_sums,
                                   want_counts);
        SearchStats stats;
        backend->assign_accumulate_pruned(*resident, run.centroids, codes, fp, codes, dist, sums,
                                          counts, stats);
        expect_identical({codes, dist}, {want_codes, want_dist}, label);
        ASSERT_EQ(sums, want_sums) << label;
        ASSERT_EQ(counts, want_counts) << label;
        // The plain pruned pass after a fused one, on the same resident points.
        if (step == 5) {
          Result plain{std::vector<uint32_t>(n), std::vector<float>(n)};
          backend->assign_pruned(*resident, run.centroids, codes, plain.codes, plain.dist, stats);
          expect_identical(plain, {want_codes, want_dist}, label + " plain");
        }
        for (size_t j = 0; j < k; ++j) {
          if (counts[j] == 0) continue;
          for (int d = 0; d < dim; ++d)
            run.centroids[j * dim + d] = fp.mean(sums[j * dim + d], counts[j]);
        }
      }
    }
  }
}

// k-means asks for no distances (dist empty): the search then writes only the codes
// that change when updating in place, and brute-force passes write theirs to scratch.
// Codes, sums and counts must be those of brute force either way, in place or not,
// whether the passes prune (b=4, K=256) or are brute force (K=16).
TEST(PrunedAssign, WithoutDistancesGivesTheSameCodesAndSums) {
  for (const auto& [dim, k] : {std::pair<int, size_t>{4, 256}, {16, 16}}) {
    const size_t n = 6000;
    Case c{weight_like(n * dim, 81u + dim), std::vector<float>(k * dim), dim};
    for (size_t j = 0; j < k; ++j)
      std::copy_n(c.points.begin() + (j * 2003 % n) * dim, dim, c.centroids.begin() + j * dim);
    const std::vector<uint32_t> weights(n, 1);
    const FixedPoint fp = FixedPoint::for_data(1.0, n);
    for (const auto& backend : backends_for(2)) {
      const auto fresh = backend->upload(c.points, weights, dim);
      const auto in_place = backend->upload(c.points, weights, dim);
      const auto apart = backend->upload(c.points, weights, dim);
      std::vector<uint32_t> codes(n, 0), previous(n, 0), next(n);
      for (int step = 0; step < 6; ++step) {
        const std::string label =
            backend->name() + " dim=" + std::to_string(dim) + " step=" + std::to_string(step);
        std::vector<uint32_t> want_codes(n);
        std::vector<float> want_dist(n);
        std::vector<int64_t> want_sums(k * dim), sums(k * dim), sums2(k * dim);
        std::vector<uint64_t> want_counts(k), counts(k), counts2(k);
        backend->assign_accumulate(*fresh, c.centroids, fp, want_codes, want_dist, want_sums,
                                   want_counts);
        SearchStats stats;
        backend->assign_accumulate_pruned(*in_place, c.centroids, codes, fp, codes, {}, sums,
                                          counts, stats);
        ASSERT_EQ(codes, want_codes) << label << " in place";
        ASSERT_EQ(sums, want_sums) << label << " in place";
        ASSERT_EQ(counts, want_counts) << label << " in place";
        std::fill(next.begin(), next.end(), 0u);
        backend->assign_accumulate_pruned(*apart, c.centroids, previous, fp, next, {}, sums2,
                                          counts2, stats);
        ASSERT_EQ(next, want_codes) << label << " apart";
        ASSERT_EQ(sums2, want_sums) << label << " apart";
        previous = next;
        for (size_t j = 0; j < k; ++j) {
          if (counts[j] == 0) continue;
          for (int d = 0; d < dim; ++d)
            c.centroids[j * dim + d] = fp.mean(sums[j * dim + d], counts[j]);
        }
      }
    }
  }
}

TEST(PrunedAssign, RejectsBadPreviousCodes) {
  auto backend = make_cpu_backend({1});
  const std::vector<float> points(40, 0.5f);
  const auto resident = backend->upload(points, std::vector<uint32_t>(10, 1), 4);
  const std::vector<float> centroids(8 * 4, 0.f);
  std::vector<uint32_t> codes(10);
  std::vector<float> dist(10);
  SearchStats stats;
  EXPECT_THROW(
      backend->assign_pruned(*resident, centroids, std::vector<uint32_t>(9, 0), codes, dist, stats),
      InputError);
  EXPECT_THROW(backend->assign_pruned(*resident, centroids, std::vector<uint32_t>(10, 8), codes,
                                      dist, stats),
               InputError);
  std::vector<uint32_t> both(11, 0);
  EXPECT_THROW(backend->assign_pruned(*resident, centroids, std::span(both).first(10),
                                      std::span(both).last(10), dist, stats),
               InputError);
  // dist may be empty, but not the wrong size.
  std::vector<float> short_dist(9);
  EXPECT_THROW(backend->assign_pruned(*resident, centroids, std::vector<uint32_t>(10, 0), codes,
                                      short_dist, stats),
               InputError);
  EXPECT_NO_THROW(
      backend->assign_pruned(*resident, centroids, std::vector<uint32_t>(10, 0), codes, {}, stats));
}

}  // namespace
}  // namespace pgkm
