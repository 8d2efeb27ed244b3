// The CUDA backend. On every machine: its argument checks against the CPU backend's
// (same refusals, same messages, and no engine call before a refusal, shown with a fake
// device half), the split-K plan and the merge key. With a GPU: every entry point
// against the CPU backend bit for bit, exact ties, subnormals, empty shards, K > 65535,
// b = 1..32, both accumulation paths, the device-resident steps and whole layers.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "core/errors.h"
#include "engine/kmeans.h"
#include "kernels/cuda/assign_plan.h"
#include "kernels/cuda/cuda_backend.h"
#include "tests/cuda_fake_engine.h"
#include "tests/test_data.h"

namespace pgkm {
namespace {

// The message of the InputError `f` throws, without its context; "no error" if none.
std::string refusal(const std::function<void()>& f) {
  try {
    f();
  } catch (const InputError& e) {
    const std::string what = e.what();
    return what.substr(std::min(what.size(), e.context().size() + 2));
  }
  return "no error";
}

std::vector<uint32_t> ones(size_t n) {
  return std::vector<uint32_t>(n, 1);
}

// ---- Host side: runs everywhere ----------------------------------------------------

class CudaChecks : public ::testing::Test {
 protected:
  void SetUp() override {
    cpu_ = make_cpu_backend({.threads = 1});
    cuda_ = cuda::make_cuda_backend_on(std::make_unique<testing_cuda::FakeEngine>(log_));
    cpu_points_ = cpu_->upload(x_, ones(4), 2);
    cuda_points_ = cuda_->upload(x_, ones(4), 2);
    log_.clear();
  }
  // The CPU and the CUDA backend refuse `call` with the same message, and the CUDA
  // backend refuses before its device half is called.
  void expect_same_refusal(const std::function<void(Backend&, const ResidentPoints&)>& call) {
    const std::string cpu = refusal([&] { call(*cpu_, *cpu_points_); });
    const std::string cuda = refusal([&] { call(*cuda_, *cuda_points_); });
    EXPECT_NE(cpu, "no error");
    EXPECT_EQ(cuda, cpu);
    EXPECT_TRUE(log_.empty()) << "device half called: " << log_.front();
    log_.clear();
  }

  std::vector<std::string> log_;
  std::unique_ptr<Backend> cpu_;
  std::unique_ptr<CudaBackend> cuda_;
  std::vector<float> x_ = {0.f, 1.f, 2.f, 3.f, 4.f, 5.f, 6.f, 7.f};  // [4, 2]
  std::unique_ptr<ResidentPoints> cpu_points_;
  std::unique_ptr<ResidentPoints> cuda_points_;
  std::vector<uint32_t> codes_ = std::vector<uint32_t>(4, 0);
  std::vector<float> dist_ = std::vector<float>(4);
  std::vector<int64_t> sums_ = std::vector<int64_t>(4);
  std::vector<uint64_t> counts_ = std::vector<uint64_t>(2);
  std::vector<float> centroids_ = {0.f, 0.f, 1.f, 1.f};  // [2, 2]
  FixedPoint fp_ = FixedPoint(20);
};

TEST_F(CudaChecks, UploadRefusesWhatTheCpuBackendRefuses) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  const std::vector<float> four = {1.f, 2.f, 3.f, 4.f};
  struct Case {
    std::vector<float> points;
    std::vector<uint32_t> weights;
    int dim;
  };
  for (const Case& c : std::vector<Case>{{{}, {}, 0},
                                         {four, {1}, 33},
                                         {{1.f, 2.f, 3.f}, {1, 1}, 2},
                                         {{1.f, 2.f, 3.f, nan}, {1, 1}, 2},
                                         {{1.f, -inf, 3.f, 4.f}, {1, 1}, 2},
                                         {four, {1, 0}, 2}}) {
    expect_same_refusal(
        [&](Backend& b, const ResidentPoints&) { b.upload(c.points, c.weights, c.dim); });
  }
}

TEST_F(CudaChecks, AssignRefusesWhatTheCpuBackendRefuses) {
  const std::vector<float> none, three = {1.f, 2.f, 3.f};
  std::vector<uint32_t> short_codes(3);
  std::vector<float> long_dist(5);
  expect_same_refusal(
      [&](Backend& b, const ResidentPoints& p) { b.assign(p, none, codes_, dist_); });
  expect_same_refusal(
      [&](Backend& b, const ResidentPoints& p) { b.assign(p, three, codes_, dist_); });
  expect_same_refusal(
      [&](Backend& b, const ResidentPoints& p) { b.assign(p, centroids_, short_codes, dist_); });
  expect_same_refusal(
      [&](Backend& b, const ResidentPoints& p) { b.assign(p, centroids_, codes_, long_dist); });
}

TEST_F(CudaChecks, AccumulateRefusesWhatTheCpuBackendRefuses) {
  std::vector<uint32_t> short_codes(3), big_code = {0, 1, 2, 0};
  std::vector<int64_t> odd_sums(3);
  expect_same_refusal([&](Backend& b, const ResidentPoints& p) {
    b.accumulate(p, short_codes, fp_, sums_, counts_);
  });
  expect_same_refusal([&](Backend& b, const ResidentPoints& p) {
    b.accumulate(p, codes_, fp_, odd_sums, counts_);
  });
  expect_same_refusal(
      [&](Backend& b, const ResidentPoints& p) { b.accumulate(p, big_code, fp_, sums_, counts_); });
  expect_same_refusal([&](Backend& b, const ResidentPoints& p) {
    b.assign_accumulate(p, centroids_, fp_, codes_, dist_, odd_sums, counts_);
  });
}

TEST_F(CudaChecks, PointsOfAnotherBackendAreRefused) {
  const std::string cuda = refusal([&] { cuda_->assign(*cpu_points_, centroids_, codes_, dist_); });
  const std::string cpu = refusal([&] { cpu_->assign(*cuda_points_, centroids_, codes_, dist_); });
  EXPECT_EQ(cuda, cpu);
  EXPECT_TRUE(log_.empty());
}

// The fused call needs counts for exactly the k centroids; the CPU backend's unfused
// default accepts more (they stay 0) and refuses fewer only when a code reaches them.
TEST_F(CudaChecks, FusedCallNeedsCountsForEveryCentroid) {
  std::vector<int64_t> sums3(6);
  std::vector<uint64_t> counts3(3);
  EXPECT_EQ(refusal([&] {
              cpu_->assign_accumulate(*cpu_points_, centroids_, fp_, codes_, dist_, sums3, counts3);
            }),
            "no error");
  EXPECT_EQ(refusal([&] {
              cuda_->assign_accumulate(*cuda_points_, centroids_, fp_, codes_, dist_, sums3,
                                       counts3);
            }),
            "counts hold 3 values, expected k=2 centroids");
  EXPECT_TRUE(log_.empty());
}

TEST_F(CudaChecks, EachCallSynchronisesOnce) {
  cuda_->assign(*cuda_points_, centroids_, codes_, dist_);
  cuda_->assign_accumulate(*cuda_points_, centroids_, fp_, codes_, dist_, sums_, counts_);
  cuda_->accumulate(*cuda_points_, codes_, fp_, sums_, counts_);
  const std::vector<std::string> expected = {"set_centroids", "assign+dist",      "download",
                                             "set_centroids", "assign+dist+sums", "download",
                                             "set_codes",     "accumulate",       "download"};
  EXPECT_EQ(log_, expected);
}

TEST_F(CudaChecks, ResidentStepsNeedTheirInputs) {
  std::vector<double> partials(1);
  EXPECT_EQ(refusal([&] { cuda_->assign_resident(*cuda_points_, nullptr); }),
            "no resident centroids: call set_centroids first");
  EXPECT_NE(refusal([&] { cuda_->update_means(fp_); }), "no error");
  EXPECT_NE(refusal([&] { cuda_->objective_chunks(*cuda_points_, partials); }), "no error");
  EXPECT_NE(refusal([&] { cuda_->set_centroids(centroids_, 3); }), "no error");
  EXPECT_TRUE(log_.empty());

  cuda_->set_centroids(centroids_, 2);
  EXPECT_NE(refusal([&] { cuda_->update_means(fp_); }), "no error");  // no sums yet
  EXPECT_NE(refusal([&] { cuda_->objective_chunks(*cuda_points_, partials); }), "no error");
  cuda_->assign_resident(*cuda_points_, &fp_);
  std::vector<double> two_partials(2);
  EXPECT_NE(refusal([&] { cuda_->objective_chunks(*cuda_points_, two_partials); }), "no error");
  std::vector<uint32_t> short_codes(3);
  CudaDownload wrong;
  wrong.codes = short_codes;
  EXPECT_NE(refusal([&] { cuda_->download(wrong); }), "no error");
  const std::vector<std::string> before = log_;
  cuda_->update_means(fp_);
  cuda_->objective_chunks(*cuda_points_, partials);
  CudaDownload all;
  all.codes = codes_;
  all.sums = sums_;
  all.counts = counts_;
  cuda_->download(all);
  const std::vector<std::string> expected = {"set_centroids",    "assign+sums", "update_means",
                                             "objective_chunks", "download",    "download"};
  EXPECT_EQ(log_, expected);
  EXPECT_EQ(before.size(), 2u);
}

TEST(CudaAssignPlan, SplitsCoverTheCentroidsWithRealOnesInEach) {
  for (int b : {1, 4, 7, 8, 16, 17, 32}) {
    for (int64_t n : {int64_t{1}, int64_t{1000}, int64_t{147456}, int64_t{5600000}}) {
      for (int64_t k : {int64_t{1}, int64_t{255}, int64_t{3072}, int64_t{70000}}) {
        const cuda::AssignPlan plan = cuda::plan_assign(n, k, b, 132);
        const int64_t tile = cuda::tile_centroids(b);
        EXPECT_GE(plan.padded_k, k);
        EXPECT_LT(plan.padded_k, k + tile);
        EXPECT_EQ(plan.padded_k % tile, 0);
        EXPECT_EQ(plan.split_centroids % tile, 0);
        EXPECT_GE(plan.splits, 1);
        EXPECT_LE(plan.splits, 64);
        EXPECT_GE(plan.splits * plan.split_centroids, plan.padded_k);
        EXPECT_LT((plan.splits - 1) * plan.split_centroids, k) << "a split of padding only";
        EXPECT_GE(plan.point_blocks * cuda::points_per_block(b), n);
        EXPECT_LT((plan.point_blocks - 1) * cuda::points_per_block(b), n);
      }
    }
  }
  // Many points: one split, no merge atomics. The paper's small layers: split.
  EXPECT_EQ(cuda::plan_assign(5600000, 65536, 8, 132).splits, 1);
  EXPECT_GT(cuda::plan_assign(147456, 3072, 4, 132).splits, 1);
}

TEST(CudaMergeKey, HigherScoreThenLowerIndexWins) {
  const float inf = std::numeric_limits<float>::infinity();
  EXPECT_GT(cuda::merge_key(1.f, 9), cuda::merge_key(0.5f, 0));
  EXPECT_GT(cuda::merge_key(-1.f, 9), cuda::merge_key(-2.f, 0));
  EXPECT_GT(cuda::merge_key(2.f, 3), cuda::merge_key(2.f, 4));
  EXPECT_GT(cuda::merge_key(-inf, 70000), uint64_t{0});
  EXPECT_GT(cuda::merge_key(1e-45f, 5), cuda::merge_key(0.f, 0));
  EXPECT_GT(cuda::merge_key(0.f, 0), cuda::merge_key(-1e-45f, 0));
  // -0 and +0 are equal scores: the lower index wins either way round.
  EXPECT_GT(cuda::merge_key(-0.f, 1), cuda::merge_key(0.f, 2));
  EXPECT_GT(cuda::merge_key(0.f, 1), cuda::merge_key(-0.f, 2));
  EXPECT_EQ(cuda::merged_index(cuda::merge_key(-3.5f, 65536)), 65536u);
}

// ---- Device side: skips without a GPU -----------------------------------------------

// What a fused pass returns.
struct Pass {
  std::vector<uint32_t> codes;
  std::vector<float> dist;
  std::vector<int64_t> sums;
  std::vector<uint64_t> counts;
};

Pass fused_pass(Backend& b, const std::vector<float>& x, const std::vector<uint32_t>& w, int dim,
                const std::vector<float>& c, const FixedPoint& fp) {
  const size_t n = w.size(), k = c.size() / static_cast<size_t>(dim);
  Pass out{std::vector<uint32_t>(n), std::vector<float>(n), std::vector<int64_t>(k * dim),
           std::vector<uint64_t>(k)};
  auto points = b.upload(x, w, dim);
  b.assign_accumulate(*points, c, fp, out.codes, out.dist, out.sums, out.counts);
  // The unfused calls give the same bits.
  std::vector<uint32_t> codes(n);
  std::vector<float> dist(n);
  b.assign(*points, c, codes, dist);
  EXPECT_EQ(codes, out.codes);
  EXPECT_EQ(dist, out.dist);
  std::vector<int64_t> sums(out.sums.size());
  std::vector<uint64_t> counts(k);
  b.accumulate(*points, codes, fp, sums, counts);
  EXPECT_EQ(sums, out.sums);
  EXPECT_EQ(counts, out.counts);
  return out;
}

std::vector<uint32_t> weights_1_to_3(size_t n) {
  std::vector<uint32_t> w(n);
  for (size_t i = 0; i < n; ++i)
    w[i] = 1 + static_cast<uint32_t>(i % 3);
  return w;
}

float max_abs(const std::vector<float>& v) {
  float m = 0.f;
  for (float x : v)
    m = std::max(m, std::fabs(x));
  return m;
}

class CudaVsCpu : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!cuda_backend_built()) GTEST_SKIP() << "built without the CUDA backend";
    const CudaDeviceStatus status = cuda_device_status();
    if (status.count == 0) GTEST_SKIP() << "no CUDA device visible: " << status.error;
    gpu_ = make_cuda_backend(0);
    cpu_ = make_cpu_backend();
  }
  // Both backends on the same data; every output equal, not close.
  void expect_same(const std::vector<float>& x, const std::vector<uint32_t>& w, int dim,
                   const std::vector<float>& c, const std::string& what) {
    const FixedPoint fp = FixedPoint::for_data(std::max(max_abs(x), 1e-30f), 3 * w.size() + 1);
    const Pass g = fused_pass(*gpu_, x, w, dim, c, fp);
    const Pass h = fused_pass(*cpu_, x, w, dim, c, fp);
    EXPECT_EQ(g.codes, h.codes) << what;
    EXPECT_EQ(g.dist, h.dist) << what;
    EXPECT_EQ(g.sums, h.sums) << what;
    EXPECT_EQ(g.counts, h.counts) << what;
  }
  std::unique_ptr<Backend> gpu_;
  std::unique_ptr<Backend> cpu_;
};

// Small enough for compute-sanitizer (bench/gpu/check.sh): one and several splits, both
// accumulation paths, an empty shard.
TEST_F(CudaVsCpu, SmallCases) {
  for (int dim : {4, 8, 17}) {
    for (int64_t k : {4, 600}) {
      const auto x = testdata::normal(2000, dim, 1.f, static_cast<uint32_t>(dim));
      const auto c = testdata::normal(k, dim, 1.f, static_cast<uint32_t>(k));
      expect_same(x, weights_1_to_3(2000), dim, c,
                  "dim " + std::to_string(dim) + " k " + std::to_string(k));
    }
  }
  expect_same({}, {}, 8, testdata::normal(5, 8, 1.f, 3), "n = 0");
}

TEST_F(CudaVsCpu, EveryBlockSizeMatchesBitForBit) {
  for (int dim = 1; dim <= 32; ++dim) {
    for (int64_t k : {1, 7, 129, 3072}) {
      const int64_t n = 5003;
      const auto x = testdata::normal(n, dim, 0.02f, static_cast<uint32_t>(dim * 100 + k));
      const auto c = testdata::normal(k, dim, 0.02f, static_cast<uint32_t>(dim + k));
      expect_same(x, weights_1_to_3(n), dim, c,
                  "dim " + std::to_string(dim) + " k " + std::to_string(k));
    }
  }
}

// Duplicated centroids, within a group and across splits, and points on them: every
// score ties, and the lowest index must win as in the scalar reference.
TEST_F(CudaVsCpu, ExactTiesGoToTheLowestIndex) {
  for (int dim : {4, 8, 16, 32}) {
    const int64_t k = 3072;
    auto c = testdata::normal(k / 2, dim, 1.f, 7);
    c.insert(c.end(), c.begin(), c.end());  // c[j + k/2] == c[j]
    for (int d = 0; d < dim; ++d)
      c[dim + d] = c[d];  // c[1] == c[0], same group
    std::vector<float> x(c.begin(), c.begin() + 1000 * dim);
    const auto noise = testdata::normal(1000, dim, 1.f, 8);
    x.insert(x.end(), noise.begin(), noise.end());
    // Integer-valued points and centroids: many exact ties among distinct centroids.
    for (float& v : x)
      v = std::round(v * 2.f);
    for (float& v : c)
      v = std::round(v * 2.f);
    expect_same(x, weights_1_to_3(x.size() / dim), dim, c, "dim " + std::to_string(dim));
  }
  // Scores -0 (centroid 0, the zero vector) and +0 (the last centroid) are equal, in
  // different splits: centroid 0 must win.
  const int dim = 4;
  std::vector<float> c(3072 * dim, 100.f);
  for (int d = 0; d < dim; ++d)
    c[d] = 0.f;
  c[(3072 - 1) * dim] = -2.f;
  for (int d = 1; d < dim; ++d)
    c[(3072 - 1) * dim + d] = 0.f;
  // x = (-1, ..): every product with centroid 0 is -0, so its score stays -0; the last
  // centroid's chain is fma(-1, -2, -2) = +0, then +0 on.
  const std::vector<float> x(300 * dim, -1.f);
  expect_same(x, ones(300), dim, c, "signed zeros");
}

TEST_F(CudaVsCpu, SubnormalsAreKept) {
  for (int dim : {3, 8, 16}) {
    // Products near 1e-39 and norms near 1e-38: subnormal partial results everywhere.
    auto x = testdata::normal(4001, dim, 3e-20f, 11);
    auto c = testdata::normal(300, dim, 3e-20f, 12);
    x[0] = 1e-45f;
    expect_same(x, weights_1_to_3(4001), dim, c, "dim " + std::to_string(dim));
  }
}

TEST_F(CudaVsCpu, EmptyShard) {
  const std::vector<float> c = testdata::normal(5, 8, 1.f, 3);
  expect_same({}, {}, 8, c, "n = 0");
}

TEST_F(CudaVsCpu, MoreThan65535Centroids) {
  const int dim = 4;
  const auto x = testdata::normal(3000, dim, 1.f, 21);
  const auto c = testdata::normal(70000, dim, 1.f, 22);
  expect_same(x, weights_1_to_3(3000), dim, c, "k = 70000");
}

// Many points on few centroids: the shared-memory bins of the accumulation.
TEST_F(CudaVsCpu, ManyPointsPerCentroid) {
  for (int dim : {1, 8, 16}) {
    const auto x = testdata::normal(300000, dim, 0.5f, 31);
    const auto c = testdata::normal(16, dim, 0.5f, 32);
    expect_same(x, weights_1_to_3(300000), dim, c, "dim " + std::to_string(dim));
  }
}

TEST_F(CudaVsCpu, ResidentStepsMatchTheHostSteps) {
  auto* gpu = dynamic_cast<CudaBackend*>(gpu_.get());
  ASSERT_NE(gpu, nullptr);
  EXPECT_NE(gpu->stream().stream, nullptr);
  const int dim = 8;
  const int64_t n = 10000, k = 300;  // 3 objective chunks, the last one short
  const auto x = testdata::normal(n, dim, 0.1f, 41);
  const auto w = weights_1_to_3(n);
  auto c = testdata::normal(k, dim, 0.1f, 42);
  const FixedPoint fp = FixedPoint::for_data(max_abs(x), 3 * n);
  const Pass host = fused_pass(*cpu_, x, w, dim, c, fp);

  auto points = gpu->upload(x, w, dim);
  gpu->set_centroids(c, dim);
  gpu->assign_resident(*points, &fp);
  std::vector<uint32_t> codes(n);
  std::vector<int64_t> sums(k * dim);
  std::vector<uint64_t> counts(k);
  CudaDownload first;
  first.codes = codes;
  first.sums = sums;
  first.counts = counts;
  gpu->download(first);
  EXPECT_EQ(codes, host.codes);
  EXPECT_EQ(sums, host.sums);
  EXPECT_EQ(counts, host.counts);

  // ClusterState::update_means on the host.
  for (int64_t j = 0; j < k; ++j) {
    if (host.counts[j] == 0) continue;
    for (int d = 0; d < dim; ++d)
      c[j * dim + d] = fp.mean(host.sums[j * dim + d], host.counts[j]);
  }
  gpu->update_means(fp);
  std::vector<float> means(k * dim);
  CudaDownload second;
  second.centroids = means;
  gpu->download(second);
  EXPECT_EQ(means, c);

  // objective_of (engine/kmeans.cpp) over the codes against the new means.
  const Pass again = fused_pass(*cpu_, x, w, dim, c, fp);
  const int64_t chunks = (n + kObjectiveChunk - 1) / kObjectiveChunk;
  std::vector<double> expected(chunks);
  for (int64_t ch = 0; ch < chunks; ++ch) {
    double s = 0;
    for (int64_t i = ch * kObjectiveChunk; i < std::min(n, (ch + 1) * kObjectiveChunk); ++i) {
      double e = 0;
      for (int d = 0; d < dim; ++d) {
        const double t =
            static_cast<double>(x[i * dim + d]) - static_cast<double>(c[again.codes[i] * dim + d]);
        e += t * t;
      }
      s += e * w[i];
    }
    expected[ch] = s;
  }
  gpu->assign_resident(*points, nullptr);
  std::vector<double> partials(chunks);
  gpu->objective_chunks(*points, partials);
  EXPECT_EQ(partials, expected);
}

TEST_F(CudaVsCpu, RefusalsMatchOnTheDevice) {
  const std::vector<float> x = {0.f, 1.f, 2.f, 3.f};
  auto gp = gpu_->upload(x, ones(2), 2);
  auto cp = cpu_->upload(x, ones(2), 2);
  std::vector<uint32_t> codes(2), big = {0, 5};
  std::vector<float> dist(3);
  std::vector<int64_t> sums(4);
  std::vector<uint64_t> counts(2);
  const std::vector<float> c = {0.f, 0.f, 1.f};
  EXPECT_EQ(refusal([&] { gpu_->assign(*gp, c, codes, dist); }),
            refusal([&] { cpu_->assign(*cp, c, codes, dist); }));
  const FixedPoint fp(10);
  EXPECT_EQ(refusal([&] { gpu_->accumulate(*gp, big, fp, sums, counts); }),
            refusal([&] { cpu_->accumulate(*cp, big, fp, sums, counts); }));
}

TEST_F(CudaVsCpu, WholeLayersMatchForEveryAlgorithm) {
  const auto starving = testdata::starving(4, 31);
  const auto normal = testdata::normal(20000, 8, 0.02f, 32);
  for (Algorithm a : {Algorithm::kIpq, Algorithm::kPgBase, Algorithm::kPg}) {
    KMeansParams p;
    p.algorithm = a;
    p.n_centroids = 64;
    const auto g1 = run_kmeans(*gpu_, p, "starving", starving, 4);
    const auto c1 = run_kmeans(*cpu_, p, "starving", starving, 4);
    EXPECT_EQ(g1.codes, c1.codes) << algorithm_name(a);
    EXPECT_EQ(g1.centroids, c1.centroids) << algorithm_name(a);
    EXPECT_EQ(g1.empty_clusters, c1.empty_clusters) << algorithm_name(a);
    EXPECT_EQ(g1.objective, c1.objective) << algorithm_name(a);
    p.n_centroids = 512;
    const auto g2 = run_kmeans(*gpu_, p, "normal", normal, 8);
    const auto c2 = run_kmeans(*cpu_, p, "normal", normal, 8);
    EXPECT_EQ(g2.codes, c2.codes) << algorithm_name(a);
    EXPECT_EQ(g2.centroids, c2.centroids) << algorithm_name(a);
  }
}

TEST(CudaBackendMissing, AskingWithoutDeviceIsAClearError) {
  const CudaDeviceStatus status = cuda_device_status();
  if (cuda_backend_built() && status.count > 0) GTEST_SKIP() << "a GPU is visible";
  EXPECT_EQ(cuda_device_count(), 0);
  if (!cuda_backend_built()) {
    EXPECT_FALSE(status.error.empty());
  }
  try {
    make_cuda_backend(0);
    FAIL() << "no error";
  } catch (const SystemError& e) {
    const std::string what = e.what();
    EXPECT_TRUE(what.find("device") != std::string::npos ||
                what.find("without the CUDA backend") != std::string::npos)
        << what;
    // A failed device query says what CUDA said (a driver too old, say), not just "none".
    if (!status.error.empty()) {
      EXPECT_NE(what.find(status.error), std::string::npos) << what;
    }
  }
}

}  // namespace
}  // namespace pgkm
