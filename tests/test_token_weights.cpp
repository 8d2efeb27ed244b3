// Token-frequency weighting of an embedding (pgkm quantize --importance-token-weight,
// pipeline/importance.h token_row_weights, engine/quantize_layer.h row_weights): a row of
// weight w counts exactly as w copies of it would, weights of one change nothing, the
// weights follow the stated formula, and missing or empty token counts are clear errors.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "core/errors.h"
#include "engine/dwc.h"
#include "engine/quantize_layer.h"
#include "io/archive.h"
#include "io/safetensors.h"
#include "pipeline/importance.h"
#include "pipeline/quantize_model.h"
#include "pipeline/resources.h"
#include "tests/run_test_util.h"
#include "tests/weight_test_util.h"

namespace pgkm {
namespace {

constexpr int64_t kRows = 48, kCols = 16;

LayerSettings settings_for(Algorithm a) {
  return small_settings(a, 12, 5);
}

WeightView view(const std::vector<float>& w, int64_t rows) {
  return {"embed_tokens.weight", DType::F32, {rows, kCols}, std::as_bytes(std::span(w))};
}

// sum_r row_weight[r] * |W[r] - W_hat[r]|^2 of a record's dequantized weight.
double row_weighted_error(const std::vector<float>& w, const LayerRecord& r,
                          const std::vector<uint32_t>& row_weight) {
  return weighted_error(w, r, [&](size_t i) { return double(row_weight[i / kCols]); });
}

TEST(TokenWeights, WeightsOfOneGiveThePlainResultBitForBit) {
  const std::vector<float> w = random_weight(1, kRows * kCols);
  auto backend = make_cpu_backend({.threads = 1});
  const std::vector<uint32_t> ones(kRows, 1);
  for (Algorithm a : kAllAlgorithms) {
    const LayerRecord plain = quantize_layer(*backend, view(w, kRows), settings_for(a));
    const LayerRecord weighted =
        quantize_layer(*backend, view(w, kRows), settings_for(a), {}, {}, ones);
    EXPECT_EQ(plain.centroids, weighted.centroids) << algorithm_name(a);
    EXPECT_EQ(plain.codes, weighted.codes) << algorithm_name(a);
    EXPECT_EQ(plain.stats.objective, weighted.stats.objective) << algorithm_name(a);
    EXPECT_NEAR(weighted.stats.plain_objective, weighted.stats.objective,
                1e-9 * weighted.stats.objective)
        << algorithm_name(a);
  }
}

// Row r of weight w_r clusters exactly as w_r copies of row r, placed right after it: the
// distinct subvectors, their order and their weights are the same. (ipq's random start
// samples input vectors, whose number differs; pg's consolidation counts w copies once but
// a weight w as w, by design: engine/dwc.h. So only pg-base is compared here.)
TEST(TokenWeights, AWeightedRowCountsAsThatManyCopies) {
  const std::vector<float> w = random_weight(2, kRows * kCols);
  std::vector<uint32_t> row_weight(kRows);
  for (int64_t r = 0; r < kRows; ++r)
    row_weight[static_cast<size_t>(r)] = 1 + static_cast<uint32_t>((r * 7) % 5);
  std::vector<float> copies;
  for (int64_t r = 0; r < kRows; ++r) {
    for (uint32_t c = 0; c < row_weight[static_cast<size_t>(r)]; ++c)
      copies.insert(copies.end(), w.begin() + r * kCols, w.begin() + (r + 1) * kCols);
  }
  const int64_t copy_rows = static_cast<int64_t>(copies.size()) / kCols;
  auto backend = make_cpu_backend({.threads = 1});
  for (Algorithm a : {Algorithm::kPgBase}) {
    const LayerRecord weighted =
        quantize_layer(*backend, view(w, kRows), settings_for(a), {}, {}, row_weight);
    const LayerRecord copied = quantize_layer(*backend, view(copies, copy_rows), settings_for(a));
    EXPECT_EQ(weighted.centroids, copied.centroids) << algorithm_name(a);
    EXPECT_EQ(weighted.stats.objective, copied.stats.objective) << algorithm_name(a);
  }
  // Every algorithm: the objective is the row-weighted error, the plain one unweighted,
  // and counts stay subvectors per code (no weights in them).
  for (Algorithm a : kAllAlgorithms) {
    const LayerRecord r =
        quantize_layer(*backend, view(w, kRows), settings_for(a), {}, {}, row_weight);
    EXPECT_NEAR(r.stats.objective, row_weighted_error(w, r, row_weight), 1e-6 * r.stats.objective)
        << algorithm_name(a);
    EXPECT_NEAR(r.stats.plain_objective, row_weighted_error(w, r, std::vector<uint32_t>(kRows, 1)),
                1e-9 * r.stats.plain_objective)
        << algorithm_name(a);
    uint64_t total = 0;
    for (uint64_t c : r.counts)
      total += c;
    EXPECT_EQ(total, uint64_t(kRows * kCols / 4)) << algorithm_name(a);
  }
}

// pg's consolidation: with multiplicities given, a point or dense cluster weighs the
// importance one copy has on average, round(weight / multiplicity); when every copy
// weighs 1 that is the paper's unit weight, so the result is the plain one exactly.
TEST(TokenWeights, ConsolidationKeepsTheImportanceOfOneCopy) {
  PointSet in;
  in.dim = 2;
  const int n = 400;
  std::mt19937 gen(7);
  std::normal_distribution<float> normal(0.f, 1.f);
  for (int i = 0; i < n; ++i) {
    // Pairs of nearly equal points, so consolidation has dense clusters to find.
    const float x = normal(gen), y = normal(gen);
    in.x.insert(in.x.end(), {x, y, x + 1e-4f, y});
    in.weight.insert(in.weight.end(), {uint32_t(1 + i % 3), uint32_t(1 + i % 2)});
  }
  const FixedPoint fp = FixedPoint::for_data(in.max_abs(), in.total_weight());
  const DwcParams params;
  const DwcResult plain = consolidate_dense_weights(in, 64, params, fp, "t");
  const DwcResult same = consolidate_dense_weights(in, 64, params, fp, "t", in.weight);
  EXPECT_EQ(plain.points.x, same.points.x);
  EXPECT_EQ(plain.points.weight, same.points.weight);
  for (uint32_t w : plain.points.weight)
    ASSERT_EQ(w, 1u);
  ASSERT_GT(plain.dense_clusters, 0);
  // Every copy 10 times as important: every output point weighs 10.
  PointSet heavy = in;
  for (uint32_t& w : heavy.weight)
    w *= 10;
  const DwcResult weighted = consolidate_dense_weights(heavy, 64, params, fp, "t", in.weight);
  EXPECT_EQ(weighted.points.x, plain.points.x);
  EXPECT_EQ(weighted.input_to_point, plain.input_to_point);
  for (uint32_t w : weighted.points.weight)
    ASSERT_EQ(w, 10u);
}

TEST(TokenWeights, HeavyRowsAreReconstructedBetter) {
  const std::vector<float> w = random_weight(3, kRows * kCols);
  std::vector<uint32_t> row_weight(kRows, 1);
  for (int64_t r : {0, 9, 20, 33})
    row_weight[static_cast<size_t>(r)] = 400;  // four frequent tokens
  auto backend = make_cpu_backend({.threads = 1});
  for (Algorithm a : kAllAlgorithms) {
    const LayerRecord plain = quantize_layer(*backend, view(w, kRows), settings_for(a));
    const LayerRecord weighted =
        quantize_layer(*backend, view(w, kRows), settings_for(a), {}, {}, row_weight);
    EXPECT_LT(row_weighted_error(w, weighted, row_weight),
              0.8 * row_weighted_error(w, plain, row_weight))
        << algorithm_name(a);
  }
}

TEST(TokenWeights, RowWeightsFollowTheFormula) {
  // rows = 4, sum f = 8: w_r = 1 + round(beta * 4 * f_r / 8).
  EXPECT_EQ(token_row_weights(std::vector<float>{0, 1, 3, 4}, 2.0, "f", "t"),
            (std::vector<uint32_t>{1, 2, 4, 5}));
  // Frequencies and counts give the same weights.
  EXPECT_EQ(token_row_weights(std::vector<float>{0, 0.125f, 0.375f, 0.5f}, 2.0, "f", "t"),
            (std::vector<uint32_t>{1, 2, 4, 5}));
  EXPECT_EQ(token_row_weights(std::vector<float>{0, 1, 3, 4}, 0.0, "f", "t"),
            (std::vector<uint32_t>{1, 1, 1, 1}));
  try {
    token_row_weights(std::vector<float>{0, 0, 0}, 4.0, "imp.safetensors", "emb.weight");
    ADD_FAILURE() << "all-zero counts accepted";
  } catch (const InputError& e) {
    EXPECT_EQ(e.context(), "imp.safetensors");
    EXPECT_NE(std::string(e.what()).find("'emb.weight' is all zero"), std::string::npos)
        << e.what();
  }
}

class TokenWeightRun : public SmallRunTest {
 protected:
  void SetUp() override {
    SmallRunTest::SetUp();
    emb_ = random_weight(4, kRows * kCols);
    fc_ = random_weight(5, 16 * kCols);
    write_run({{"embed_tokens.weight", "F32", {kRows, kCols}, std::as_bytes(std::span(emb_))},
               {"layers.0.fc.weight", "F32", {16, kCols}, std::as_bytes(std::span(fc_))}},
              "pgkm: 1\ndefaults:\n  block_size: 4\n  n_centroids: 8\n"
              "rules:\n  - match: '.*\\.weight'\n");
  }

  // An importance file for the Linear, and token counts for the embedding when given.
  void write_importance(const std::vector<float>& counts) {
    const std::vector<float>& h = fc_h_;
    std::vector<io::OutTensor> t{
        {"layers.0.fc.weight", "F32", {kCols}, std::as_bytes(std::span(h))}};
    if (!counts.empty())
      t.push_back({"embed_tokens.weight",
                   "F32",
                   {int64_t(counts.size())},
                   std::as_bytes(std::span(counts))});
    io::write_safetensors(path("imp.safetensors"), t, {{"pgkm_importance", "1"}});
    params_.importance = path("imp.safetensors");
  }

  LayerRecord run_and_read(const std::string& out, const std::string& layer) {
    params_.out = path(out);
    const auto world = make_single_process_world();
    QuantizeObserver quiet;
    quantize_model(params_, *world, quiet);
    return io::ArchiveReader::open(params_.out).read_layer(layer);
  }

  std::vector<float> emb_, fc_, fc_h_ = std::vector<float>(kCols, 1.f);
};

TEST_F(TokenWeightRun, TheEmbeddingIsWeightedOnlyWithABetaAndEveryLayerNeedsItsStatistic) {
  std::vector<float> counts(kRows, 0.f);
  counts[3] = 40;
  counts[7] = 25;
  write_importance(counts);
  const LayerRecord unweighted = run_and_read("beta0.h5", "embed_tokens.weight");
  params_.importance_token_weight = 4;
  const LayerRecord weighted = run_and_read("beta4.h5", "embed_tokens.weight");
  EXPECT_NE(unweighted.settings_digest, weighted.settings_digest);  // resume tells them apart
  EXPECT_NE(unweighted.centroids, weighted.centroids);
  // The counted tokens' rows are reconstructed better, by the formula's weights.
  const std::vector<uint32_t> rw = token_row_weights(counts, 4, "", "");
  EXPECT_EQ(rw[3], 119u);  // 1 + round(4 * 48 * 40 / 65 = 118.15)
  EXPECT_LT(row_weighted_error(emb_, weighted, rw), row_weighted_error(emb_, unweighted, rw));

  // With a beta, an embedding the file does not name is an error unless told plain.
  write_importance({});
  const auto world = make_single_process_world();
  QuantizeObserver quiet;
  params_.out = path("missing.h5");
  try {
    quantize_model(params_, *world, quiet);
    ADD_FAILURE() << "an embedding without token counts was accepted";
  } catch (const InputError& e) {
    EXPECT_EQ(e.context(), params_.importance);
    EXPECT_NE(std::string(e.what()).find("embed_tokens.weight"), std::string::npos) << e.what();
  }
  params_.importance_missing_plain = true;
  const LayerRecord plain = run_and_read("plain.h5", "embed_tokens.weight");
  params_.importance_token_weight = 0;
  params_.importance.clear();
  EXPECT_EQ(plain.centroids, run_and_read("none.h5", "embed_tokens.weight").centroids);
}

TEST(TokenWeightParams, BetaOutOfRangeOrWithoutAnImportanceFileIsAnErrorNamingTheOption) {
  QuantizeParams p;
  p.out = "x.h5";
  for (double beta : {-1.0, kMaxTokenWeight * 2, std::nan("")}) {
    p.importance_token_weight = beta;
    try {
      validate(p);
      ADD_FAILURE() << beta << " accepted";
    } catch (const InputError& e) {
      EXPECT_EQ(e.context(), "--importance-token-weight");
    }
  }
  p.importance_token_weight = 4;  // in range, but no file to take the counts from
  try {
    validate(p);
    ADD_FAILURE() << "a token weight without --importance accepted";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("--importance FILE"), std::string::npos) << e.what();
  }
  p.importance = "imp.safetensors";
  EXPECT_NO_THROW(validate(p));
}

}  // namespace
}  // namespace pgkm
