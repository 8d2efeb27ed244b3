// PQ block layout against fairseq's reshape/permute, dtype conversions, reconstruction.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>

#include "core/errors.h"
#include "engine/layout.h"

namespace pgkm {
namespace {

WeightView f32_view(const std::string& name, std::vector<int64_t> shape,
                    const std::vector<float>& v) {
  return {name, DType::F32, std::move(shape), std::as_bytes(std::span<const float>(v))};
}

// fairseq: W.reshape(out, -1, b).permute(2, 1, 0).flatten(1, 2); column j of the
// result is subvector j. Worked by hand for W = [[0,1,2,3],[4,5,6,7],[8,9,10,11]], b = 2:
// j = blk*out + row, so j=0..5 are W[0,0:2], W[1,0:2], W[2,0:2], W[0,2:4], W[1,2:4], W[2,2:4].
TEST(Layout, MatchesFairseqHandWorkedLinear) {
  std::vector<float> w(12);
  std::iota(w.begin(), w.end(), 0.f);
  const auto view = f32_view("fc", {3, 4}, w);
  const auto layout = make_block_layout("fc", view.shape, 2);
  EXPECT_EQ(layout.n_vectors(), 6);
  const std::vector<float> expected = {0, 1, 4, 5, 8, 9, 2, 3, 6, 7, 10, 11};
  EXPECT_EQ(extract_subvectors(view, layout), expected);
}

// Conv2d (out=2, in=2, kh=1, kw=2): each filter flattens to in*kh*kw = 4 weights.
TEST(Layout, ConvFlattensInKhKwPerFilter) {
  std::vector<float> w(8);
  std::iota(w.begin(), w.end(), 0.f);
  const auto view = f32_view("conv", {2, 2, 1, 2}, w);
  const auto layout = make_block_layout("conv", view.shape, 2);
  EXPECT_EQ(layout.row_length, 4);
  const std::vector<float> expected = {0, 1, 4, 5, 2, 3, 6, 7};
  EXPECT_EQ(extract_subvectors(view, layout), expected);
}

TEST(Layout, HalfPrecisionSourcesWidenExactly) {
  const std::vector<float> values = {0.5f, -1.25f, 3.f, 0.f, -0.f, 1024.f, 0.001953125f, -2.f};
  for (DType t : {DType::F16, DType::BF16}) {
    std::vector<uint16_t> raw;
    for (float v : values)
      raw.push_back(t == DType::F16 ? float_to_f16(v) : float_to_bf16(v));
    WeightView view{"emb", t, {2, 4}, std::as_bytes(std::span<const uint16_t>(raw))};
    const auto layout = make_block_layout("emb", view.shape, 4);
    const auto got = extract_subvectors(view, layout);
    for (size_t i = 0; i < values.size(); ++i)
      EXPECT_EQ(got[i], values[i]) << dtype_name(t) << i;
  }
}

TEST(Dtype, F16RoundTripsEveryFiniteValue) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const float f = f16_to_float(static_cast<uint16_t>(h));
    if (std::isnan(f)) continue;
    ASSERT_EQ(float_to_f16(f), h) << "half bits " << h;
  }
}

TEST(Dtype, NarrowingRoundsToNearestEven) {
  // 1 + 2^-11 is halfway between two halves: ties to even (1.0).
  EXPECT_EQ(float_to_f16(1.f + std::ldexp(1.f, -11)), 0x3C00u);
  EXPECT_EQ(float_to_f16(1.f + 3 * std::ldexp(1.f, -11)), 0x3C02u);
  EXPECT_EQ(float_to_f16(70000.f), 0x7C00u);
  EXPECT_EQ(float_to_bf16(1.f + std::ldexp(1.f, -8)), 0x3F80u);
  EXPECT_EQ(bf16_to_float(float_to_bf16(3.140625f)), 3.140625f);
}

TEST(Layout, ReconstructInvertsExtract) {
  std::vector<float> w(6 * 8);
  for (size_t i = 0; i < w.size(); ++i)
    w[i] = std::sin(static_cast<float>(i));
  const auto view = f32_view("q_proj", {6, 8}, w);
  const auto layout = make_block_layout("q_proj", view.shape, 4);
  const auto vectors = extract_subvectors(view, layout);
  std::vector<uint32_t> codes(static_cast<size_t>(layout.n_vectors()));
  std::iota(codes.begin(), codes.end(), 0u);  // every subvector is its own centroid
  std::vector<float> back(w.size());
  reconstruct_weight(layout, vectors, codes, back);
  EXPECT_EQ(back, w);
}

void expect_input_error(const std::function<void()>& f, const std::string& must_contain) {
  try {
    f();
    FAIL() << "no error; expected one mentioning " << must_contain;
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find(must_contain), std::string::npos) << e.what();
  }
}

TEST(Layout, BadShapesAndBlockSizesNameTheTensor) {
  const std::vector<int64_t> ok = {4, 8};
  expect_input_error([&] { make_block_layout("dec.fc1", ok, 3); }, "dec.fc1: row length 8");
  expect_input_error([&] { make_block_layout("dec.fc1", ok, 0); }, "block size 0");
  expect_input_error([&] { make_block_layout("dec.fc1", ok, 33); }, "block size 33");
  const std::vector<int64_t> rank3 = {2, 2, 2};
  expect_input_error([&] { make_block_layout("t3", rank3, 2); }, "shape is [2, 2, 2]");
  const std::vector<int64_t> zero = {0, 8};
  expect_input_error([&] { make_block_layout("z", zero, 4); }, "zero-size tensor");
}

TEST(Layout, NonFiniteWeightsAndSizeMismatchAreErrors) {
  std::vector<float> w(8, 1.f);
  w[5] = std::numeric_limits<float>::quiet_NaN();
  auto view = f32_view("k_proj", {2, 4}, w);
  auto layout = make_block_layout("k_proj", view.shape, 4);
  expect_input_error([&] { check_weight_values(view); },
                     "k_proj: element 5 (row 1, column 1) is nan");
  w[5] = std::numeric_limits<float>::infinity();
  expect_input_error([&] { check_weight_values(view); }, "is inf");
  const std::vector<float> short_data(7, 0.f);
  auto short_view = f32_view("v_proj", {2, 4}, short_data);
  expect_input_error([&] { check_weight_values(short_view); }, "holds 28 bytes");
}

}  // namespace
}  // namespace pgkm
