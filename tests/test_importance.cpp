// Importance-weighted quantization (pgkm quantize --importance, pipeline/importance.h):
// equal importances change nothing, weighting lowers the weighted error, the scales are
// divided out exactly on reconstruction, and bad importance files are clear errors.
#include "pipeline/importance.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "core/errors.h"
#include "engine/quantize_layer.h"
#include "io/archive.h"
#include "io/layer_wire.h"
#include "io/safetensors.h"
#include "pipeline/quantize_model.h"
#include "pipeline/reconstruct.h"
#include "pipeline/resources.h"
#include "tests/run_test_util.h"
#include "tests/weight_test_util.h"

namespace pgkm {
namespace {

constexpr int64_t kRows = 64, kCols = 32;

LayerSettings settings_for(Algorithm a) {
  return small_settings(a, 16, 6);
}

WeightView view(const std::vector<float>& w) {
  return {"layers.0.fc1.weight", DType::F32, {kRows, kCols}, std::as_bytes(std::span(w))};
}

// sum_c h_c (w - w_hat)^2 of a record's dequantized weight.
double column_weighted_error(const std::vector<float>& w, const LayerRecord& r,
                             const std::vector<float>& h) {
  return weighted_error(w, r, [&](size_t i) { return double(h[i % kCols]); });
}

TEST(Importance, EqualImportancesGiveThePlainResultBitForBit) {
  const std::vector<float> w = random_weight(1, kRows * kCols);
  const std::vector<float> scales = importance_scales(std::vector<float>(kCols, 0.37f), 0.5);
  for (float s : scales)
    ASSERT_EQ(s, 1.0f);
  auto backend = make_cpu_backend({.threads = 1});
  for (Algorithm a : kAllAlgorithms) {
    const LayerRecord plain = quantize_layer(*backend, view(w), settings_for(a));
    const LayerRecord weighted = quantize_layer(*backend, view(w), settings_for(a), {}, scales);
    EXPECT_EQ(plain.centroids, weighted.centroids) << algorithm_name(a);
    EXPECT_EQ(plain.codes, weighted.codes) << algorithm_name(a);
    EXPECT_EQ(plain.stats.objective, weighted.stats.objective) << algorithm_name(a);
    EXPECT_TRUE(weighted.importance_weighted());
    EXPECT_FALSE(plain.importance_weighted());
  }
}

TEST(Importance, LoudFeaturesLowerTheWeightedErrorAndScalesDivideOutExactly) {
  const std::vector<float> w = random_weight(2, kRows * kCols);
  std::vector<float> h(kCols, 1.0f);
  for (int c : {0, 5, 17})
    h[static_cast<size_t>(c)] = 200.0f;  // a few input features carry large activations
  const std::vector<float> scales = importance_scales(h, 1.0);  // s_c^2 proportional to h_c
  auto backend = make_cpu_backend({.threads = 1});
  for (Algorithm a : kAllAlgorithms) {
    const LayerRecord plain = quantize_layer(*backend, view(w), settings_for(a));
    const LayerRecord weighted = quantize_layer(*backend, view(w), settings_for(a), {}, scales);
    EXPECT_LT(column_weighted_error(w, weighted, h), 0.8 * column_weighted_error(w, plain, h))
        << algorithm_name(a);
    // The report's plain objective is the unweighted error of the dequantized weight.
    EXPECT_NEAR(weighted.stats.plain_objective,
                column_weighted_error(w, weighted, std::vector<float>(kCols, 1.f)),
                1e-9 * weighted.stats.plain_objective);
    // reconstruct = centroids[codes] / s_c, one float division per weight.
    const BlockLayout layout = make_block_layout(weighted.name, weighted.shape, 4);
    std::vector<float> out(w.size());
    reconstruct_weight(layout, weighted.centroids, weighted.codes, out, weighted.column_scales);
    for (int64_t r = 0; r < kRows; ++r) {
      for (int64_t c = 0; c < kCols; ++c) {
        const uint32_t code = weighted.codes[static_cast<size_t>((c / 4) * kRows + r)];
        const float expected = weighted.centroids[code * 4 + static_cast<size_t>(c % 4)] /
                               scales[static_cast<size_t>(c)];
        ASSERT_EQ(out[static_cast<size_t>(r * kCols + c)], expected) << r << "," << c;
      }
    }
  }
}

TEST(Importance, ScalesTravelOnTheWire) {
  const std::vector<float> w = random_weight(3, kRows * kCols);
  auto backend = make_cpu_backend({.threads = 1});
  const std::vector<float> scales = importance_scales(random_weight(4, kCols), 0.5);
  LayerRecord r = quantize_layer(*backend, view(w), settings_for(Algorithm::kPg), {}, scales);
  const LayerRecord back = io::decode_layer(io::encode_layer(r), "test: ");
  EXPECT_EQ(back.column_scales, r.column_scales);
  EXPECT_EQ(back.stats.plain_objective, r.stats.plain_objective);
}

class ImportanceRun : public SmallRunTest {
 protected:
  void SetUp() override {
    SmallRunTest::SetUp();
    fc1_ = random_weight(5, 32 * 16);
    fc2_ = random_weight(6, 16 * 32);
    write_run({{"layers.0.fc1.weight", "F32", {32, 16}, std::as_bytes(std::span(fc1_))},
               {"layers.0.fc2.weight", "F32", {16, 32}, std::as_bytes(std::span(fc2_))}},
              "pgkm: 1\ndefaults:\n  block_size: 4\n  n_centroids: 8\n"
              "rules:\n  - match: 'layers\\.0\\.fc.\\.weight'\n");
  }

  // Writes an importance file with h1 for fc1 (16 inputs) and h2 for fc2 (32), when given.
  void write_importance(const std::vector<float>& h1, const std::vector<float>& h2) {
    std::vector<io::OutTensor> t;
    if (!h1.empty())
      t.push_back(
          {"layers.0.fc1.weight", "F32", {int64_t(h1.size())}, std::as_bytes(std::span(h1))});
    if (!h2.empty())
      t.push_back(
          {"layers.0.fc2.weight", "F32", {int64_t(h2.size())}, std::as_bytes(std::span(h2))});
    io::write_safetensors(path("imp.safetensors"), t, {{"pgkm_importance", "1"}});
    params_.importance = path("imp.safetensors");
  }

  // The InputError message of a run, or "" when it succeeds.
  std::string error_of_run() {
    const auto world = make_single_process_world();
    QuantizeObserver quiet;
    try {
      quantize_model(params_, *world, quiet);
    } catch (const InputError& e) {
      EXPECT_EQ(e.context(), params_.importance);
      return e.what();
    }
    return "";
  }

  std::vector<float> fc1_, fc2_;
};

TEST_F(ImportanceRun, EqualImportancesGiveThePlainArchiveAndReconstructDividesExactly) {
  const auto world = make_single_process_world();
  QuantizeObserver quiet;
  quantize_model(params_, *world, quiet);
  const io::ArchiveReader plain = io::ArchiveReader::open(params_.out);
  params_.out = path("equal.h5");
  write_importance(std::vector<float>(16, 2.5f), std::vector<float>(32, 0.125f));
  quantize_model(params_, *world, quiet);
  const io::ArchiveReader equal = io::ArchiveReader::open(params_.out);
  EXPECT_EQ(equal.format_version(), 4);
  for (const char* name : {"layers.0.fc1.weight", "layers.0.fc2.weight"}) {
    const LayerRecord a = plain.read_layer(name), b = equal.read_layer(name);
    EXPECT_EQ(a.centroids, b.centroids) << name;
    EXPECT_EQ(a.codes, b.codes) << name;
    EXPECT_FALSE(a.importance_weighted());
    EXPECT_EQ(b.column_scales, std::vector<float>(a.shape[1], 1.0f));
  }
  // A weighted archive: the scales are read back and reconstruct divides them out.
  params_.out = path("weighted.h5");
  std::vector<float> h1(16, 1.f), h2(32, 1.f);
  h1[3] = 50.f;
  h2[30] = 9.f;
  write_importance(h1, h2);
  quantize_model(params_, *world, quiet);
  const io::ArchiveReader weighted = io::ArchiveReader::open(params_.out);
  const LayerRecord fc1 = weighted.read_layer("layers.0.fc1.weight");
  const std::vector<float> scales = importance_scales(h1, params_.importance_exponent);
  ASSERT_EQ(fc1.column_scales, scales);
  reconstruct_model(params_.out, path("restored.safetensors"));
  const io::SafetensorsFile restored = io::SafetensorsFile::open(path("restored.safetensors"));
  const auto bytes = restored.bytes(*restored.find("layers.0.fc1.weight"));
  std::vector<float> out(32 * 16);
  std::memcpy(out.data(), bytes.data(), bytes.size());
  for (int64_t r = 0; r < 32; ++r) {
    for (int64_t c = 0; c < 16; ++c) {
      const uint32_t code = fc1.codes[static_cast<size_t>((c / 4) * 32 + r)];
      ASSERT_EQ(out[static_cast<size_t>(r * 16 + c)],
                fc1.centroids[code * 4 + static_cast<size_t>(c % 4)] / scales[size_t(c)]);
    }
  }
}

TEST_F(ImportanceRun, BadImportanceFilesAreErrorsNamingFileTensorAndValue) {
  write_importance(std::vector<float>(16, 1.f), {});
  std::string e = error_of_run();
  EXPECT_NE(e.find("layers.0.fc2.weight"), std::string::npos) << e;
  EXPECT_NE(e.find("--importance-missing plain"), std::string::npos) << e;
  params_.importance_missing_plain = true;  // the missing layer stays plain
  EXPECT_EQ(error_of_run(), "");
  const io::ArchiveReader a = io::ArchiveReader::open(params_.out);
  EXPECT_TRUE(a.read_layer("layers.0.fc1.weight").importance_weighted());
  EXPECT_FALSE(a.read_layer("layers.0.fc2.weight").importance_weighted());
  params_.importance_missing_plain = false;

  write_importance(std::vector<float>(15, 1.f), std::vector<float>(32, 1.f));
  e = error_of_run();
  EXPECT_NE(e.find("'layers.0.fc1.weight' has shape [15], expected [16]"), std::string::npos) << e;
  std::vector<float> h(16, 1.f);
  h[7] = -2.f;
  write_importance(h, std::vector<float>(32, 1.f));
  e = error_of_run();
  EXPECT_NE(e.find("'layers.0.fc1.weight' value 7 is -2"), std::string::npos) << e;
  h[7] = std::numeric_limits<float>::quiet_NaN();
  write_importance(h, std::vector<float>(32, 1.f));
  e = error_of_run();
  EXPECT_NE(e.find("value 7 is nan"), std::string::npos) << e;
  write_importance(std::vector<float>(16, 0.f), std::vector<float>(32, 1.f));
  e = error_of_run();
  EXPECT_NE(e.find("'layers.0.fc1.weight' is all zero"), std::string::npos) << e;
}

}  // namespace
}  // namespace pgkm
