// The CUDA backend against the CPU backend on the same data: every entry point, bit for
// bit, and whole layers with every algorithm. Skips cleanly without the CUDA backend or
// a visible GPU.
#include <gtest/gtest.h>

#include "core/errors.h"
#include "engine/kmeans.h"
#include "tests/test_data.h"

namespace pgkm {
namespace {

class CudaVsCpu : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!cuda_backend_built()) GTEST_SKIP() << "built without the CUDA backend";
    if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device visible";
    gpu_ = make_cuda_backend(0);
    cpu_ = make_cpu_backend({.threads = 2});
  }
  std::unique_ptr<Backend> gpu_;
  std::unique_ptr<Backend> cpu_;
};

// Codes and distances are equal, not close: both backends follow the arithmetic contract
// of kernels/backend.h with the same fmaf chains in the same order.
TEST_F(CudaVsCpu, AssignAndAccumulateMatchBitForBit) {
  for (int dim : {1, 3, 4, 8, 16, 32}) {
    for (int64_t k : {1, 7, 129, 3072}) {
      const int64_t n = 5003;
      const auto x = testdata::normal(n, dim, 0.02f, static_cast<uint32_t>(dim * 100 + k));
      const auto c = testdata::normal(k, dim, 0.02f, static_cast<uint32_t>(dim + k));
      std::vector<uint32_t> w(static_cast<size_t>(n));
      for (size_t i = 0; i < w.size(); ++i)
        w[i] = 1 + static_cast<uint32_t>(i % 3);
      const FixedPoint fp = FixedPoint::for_data(0.2, 3 * static_cast<uint64_t>(n));
      auto on = [&](Backend& b, std::vector<uint32_t>& codes, std::vector<float>& dist,
                    std::vector<int64_t>& sums, std::vector<uint64_t>& counts) {
        auto points = b.upload(x, w, dim);
        codes.resize(static_cast<size_t>(n));
        dist.resize(static_cast<size_t>(n));
        sums.resize(static_cast<size_t>(k * dim));
        counts.resize(static_cast<size_t>(k));
        b.assign_accumulate(*points, c, fp, codes, dist, sums, counts);
        std::vector<int64_t> sums2(sums.size());
        std::vector<uint64_t> counts2(counts.size());
        b.accumulate(*points, codes, fp, sums2, counts2);
        EXPECT_EQ(sums2, sums);
        EXPECT_EQ(counts2, counts);
      };
      std::vector<uint32_t> gc, cc;
      std::vector<float> gd, cd;
      std::vector<int64_t> gs, cs;
      std::vector<uint64_t> gn, cn;
      on(*gpu_, gc, gd, gs, gn);
      on(*cpu_, cc, cd, cs, cn);
      EXPECT_EQ(gc, cc) << "dim " << dim << " k " << k;
      EXPECT_EQ(gd, cd) << "dim " << dim << " k " << k;
      EXPECT_EQ(gs, cs) << "dim " << dim << " k " << k;
      EXPECT_EQ(gn, cn) << "dim " << dim << " k " << k;
    }
  }
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
  if (cuda_backend_built() && cuda_device_count() > 0) GTEST_SKIP() << "a GPU is visible";
  try {
    make_cuda_backend(0);
    FAIL() << "no error";
  } catch (const SystemError& e) {
    const std::string what = e.what();
    EXPECT_TRUE(what.find("device") != std::string::npos ||
                what.find("without the CUDA backend") != std::string::npos)
        << what;
  }
}

}  // namespace
}  // namespace pgkm
