// Bad input to the engine is a typed InputError naming the layer and the value.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>

#include "core/errors.h"
#include "engine/quantize_layer.h"

namespace pgkm {
namespace {

void expect_input_error(const std::function<void()>& f, const std::string& context,
                        const std::string& must_contain) {
  try {
    f();
    FAIL() << "no error; expected one mentioning " << must_contain;
  } catch (const InputError& e) {
    EXPECT_EQ(e.context(), context);
    EXPECT_NE(std::string(e.what()).find(must_contain), std::string::npos) << e.what();
  }
}

class EngineErrors : public ::testing::Test {
 protected:
  std::unique_ptr<Backend> backend_ = make_cpu_backend({.threads = 1});
  KMeansParams params_;
  std::vector<float> data_ = std::vector<float>(64, 0.25f);
};

TEST_F(EngineErrors, MoreCentroidsThanVectors) {
  params_.n_centroids = 17;  // 64 values / b=4 = 16 vectors
  expect_input_error([&] { run_kmeans(*backend_, params_, "layer.3.fc1", data_, 4); },
                     "layer.3.fc1", "number of centroids 17 exceeds the number of vectors 16");
  WeightView w{"layer.3.fc1", DType::F32, {4, 16}, std::as_bytes(std::span<const float>(data_))};
  LayerSettings settings{params_, 4};
  expect_input_error([&] { quantize_layer(*backend_, w, settings); }, "layer.3.fc1",
                     "17 centroids requested but block size 4 gives only 16 subvectors");
}

TEST_F(EngineErrors, ZeroCentroidsAndNegativeIterations) {
  params_.n_centroids = 0;
  expect_input_error([&] { run_kmeans(*backend_, params_, "emb", data_, 4); }, "emb",
                     "number of centroids 0 must be >= 1");
  params_.n_centroids = 2;
  params_.iterations = -1;
  expect_input_error([&] { run_kmeans(*backend_, params_, "emb", data_, 4); }, "emb",
                     "iteration count -1 is negative");
}

TEST_F(EngineErrors, NonFiniteValueNamesVectorAndCoordinate) {
  params_.n_centroids = 2;
  data_[9] = std::numeric_limits<float>::quiet_NaN();
  expect_input_error([&] { run_kmeans(*backend_, params_, "out_proj", data_, 4); }, "out_proj",
                     "value nan at vector 2, coordinate 1 is not finite");
  data_[9] = -std::numeric_limits<float>::infinity();
  expect_input_error([&] { run_kmeans(*backend_, params_, "out_proj", data_, 4); }, "out_proj",
                     "value -inf at vector 2");
}

TEST_F(EngineErrors, ZeroSizeAndBadBlockSize) {
  params_.n_centroids = 1;
  std::vector<float> none;
  expect_input_error([&] { run_kmeans(*backend_, params_, "empty", none, 4); }, "empty",
                     "no vectors to cluster");
  expect_input_error([&] { run_kmeans(*backend_, params_, "wide", data_, 33); }, "wide",
                     "block size 33 is outside 1..32");
  expect_input_error([&] { run_kmeans(*backend_, params_, "ragged", data_, 5); }, "ragged",
                     "64 values do not make whole vectors of size 5");
}

TEST(AlgorithmNames, RoundTripAndRejectUnknown) {
  for (Algorithm a : {Algorithm::kIpq, Algorithm::kPgBase, Algorithm::kPg}) {
    EXPECT_EQ(parse_algorithm(algorithm_name(a)), a);
  }
  expect_input_error([] { parse_algorithm("kmeans++"); }, "algorithm",
                     "unknown algorithm 'kmeans++'; expected pg, pg-base or ipq");
}

}  // namespace
}  // namespace pgkm
