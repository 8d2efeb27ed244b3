// The layer wire encoding (io/layer_wire.h): round trips and hostile inputs.
#include <gtest/gtest.h>

#include <bit>
#include <cstring>
#include <limits>
#include <string_view>
#include <type_traits>

#include "core/errors.h"
#include "io/layer_wire.h"
#include "io/record_json.h"

namespace pgkm::io {
namespace {

// A layer with every field set to a value distinct from its default.
LayerRecord make_layer(int64_t k, int b, int64_t n_codes) {
  LayerRecord l;
  l.name = "encoder.layers.0.fc1.weight";
  l.shape = {n_codes, b, -1, std::numeric_limits<int64_t>::max()};
  l.source_dtype = DType::BF16;
  l.module_type = ModuleType::kConv2d;
  l.settings.block_size = b;
  l.settings.centroid_dtype = CentroidDtype::kF32;
  KMeansParams& p = l.settings.kmeans;
  p.n_centroids = k;
  p.algorithm = Algorithm::kPgBase;
  p.iterations = 9;
  p.seed = std::numeric_limits<uint64_t>::max();
  p.ipq.eps = 3e-7f;
  p.ipq.max_tries = 11;
  p.pg.max_rounds = 4;
  p.dwc.c_sd = 0.7;
  p.dwc.c_mc = 3.5;
  p.dwc.initial_epsilon_scale = 0.125;
  p.dwc.count_weighted = true;
  p.dwc.max_epsilon_updates = 17;
  l.stats.iterations_run = 15;
  l.stats.empty_clusters = 2;
  l.stats.initial_empty = 5;
  l.stats.objective = 1234.5678901234567;
  l.stats.resolution_rounds = 7;
  l.stats.seconds_total = -0.0;
  l.stats.seconds_resolve = 0.5;
  l.stats.distinct_vectors = n_codes - 1;
  l.stats.clustered_points = n_codes - 2;
  l.stats.stopped_early = true;
  l.stats.stop_reason = "ran out of tries";
  l.stats.per_iteration = {IterationStats{0, 2.5, 3, 1, 6, 0.25, 0.125, 1e-9},
                           IterationStats{1, 2.25, 1, 0, 2, 0.5, 0.0, 3.0}};
  l.source_digest = "sha256:" + std::string(64, 'a');
  l.settings_digest = std::string("bin\0ary", 7);
  for (int64_t i = 0; i < k * b; ++i)
    l.centroids.push_back(0.25f * static_cast<float>(i) - 1.0f);
  l.centroids.back() = std::numeric_limits<float>::denorm_min();
  for (int64_t i = 0; i < n_codes; ++i)
    l.codes.push_back(static_cast<uint32_t>(i % k));
  for (int64_t c = 0; c < k; ++c)
    l.counts.push_back(uint64_t{1} << (31 - c % 32));
  return l;
}

// A field's value in a form that compares exactly: doubles and floats by their bits,
// per-iteration statistics by every wire field.
template <typename T>
auto comparable(const T& v) {
  if constexpr (std::is_same_v<T, std::vector<IterationStats>>) {
    return iteration_stats_json(v, kWire).dump();
  } else if constexpr (std::is_same_v<T, double>) {
    return std::bit_cast<uint64_t>(v);
  } else if constexpr (std::is_same_v<T, float>) {
    return std::bit_cast<uint32_t>(v);
  } else {
    return v;
  }
}

// Every kWire field of the record table compares equal, and so do the datasets.
void expect_same(const LayerRecord& a, const LayerRecord& b) {
  for_each_layer_field(a, [&](const FieldInfo& f, const auto& va) {
    if ((f.uses & kWire) == 0) return;
    for_each_layer_field(b, [&](const FieldInfo& g, const auto& vb) {
      if (std::string_view(f.name) != g.name || f.uses != g.uses) return;
      if constexpr (std::is_same_v<decltype(va), decltype(vb)>) {
        EXPECT_TRUE(comparable(va) == comparable(vb)) << f.name;
      }
    });
  });
  ASSERT_EQ(a.centroids.size(), b.centroids.size());
  EXPECT_EQ(0, std::memcmp(a.centroids.data(), b.centroids.data(), 4 * a.centroids.size()));
  EXPECT_EQ(a.codes, b.codes);
  EXPECT_EQ(a.counts, b.counts);
}

TEST(LayerWire, RoundTripSmall) {
  const LayerRecord layer = make_layer(3, 2, 5);
  expect_same(layer, decode_layer(encode_layer(layer), "layer"));
}

TEST(LayerWire, RoundTripLarge) {
  const LayerRecord layer = make_layer(256, 8, 100'000);
  const auto bytes = encode_layer(layer);
  EXPECT_GT(bytes.size(), 4 * 100'000u);
  expect_same(layer, decode_layer(bytes, "layer"));
}

TEST(LayerWire, RoundTripDefaultLayer) {
  expect_same(LayerRecord{}, decode_layer(encode_layer(LayerRecord{}), "layer"));
}

TEST(LayerWire, EncodingIsLittleEndian) {
  const auto bytes = encode_layer(make_layer(3, 2, 5));
  ASSERT_GT(bytes.size(), 20u);
  EXPECT_EQ(0, std::memcmp(bytes.data(), "PGKMLAYR", 8));
  EXPECT_EQ(std::to_integer<int>(bytes[8]), static_cast<int>(kLayerWireVersion));
  EXPECT_EQ(std::to_integer<int>(bytes[9]), 0);
  // The name's length, a uint64 little-endian.
  EXPECT_EQ(std::to_integer<size_t>(bytes[12]), make_layer(3, 2, 5).name.size());
  EXPECT_EQ(std::to_integer<int>(bytes[13]), 0);
}

TEST(LayerWire, EveryTruncationThrows) {
  const auto bytes = encode_layer(make_layer(3, 2, 5));
  for (size_t n = 0; n < bytes.size(); ++n) {
    const std::vector<std::byte> cut(bytes.begin(), bytes.begin() + static_cast<ptrdiff_t>(n));
    EXPECT_THROW(decode_layer(cut, "cut"), InputError) << "length " << n;
  }
}

TEST(LayerWire, TrailingBytesThrow) {
  auto bytes = encode_layer(make_layer(3, 2, 5));
  bytes.push_back(std::byte{0});
  EXPECT_THROW(decode_layer(bytes, "layer"), InputError);
}

TEST(LayerWire, WrongMagicThrows) {
  auto bytes = encode_layer(make_layer(3, 2, 5));
  bytes[0] = std::byte{'X'};
  try {
    decode_layer(bytes, "rank 3 layer");
    FAIL() << "no exception";
  } catch (const InputError& e) {
    EXPECT_EQ(e.context(), "rank 3 layer");
    EXPECT_NE(std::string(e.what()).find("magic"), std::string::npos) << e.what();
  }
}

TEST(LayerWire, WrongVersionThrows) {
  auto bytes = encode_layer(make_layer(3, 2, 5));
  bytes[8] = std::byte{kLayerWireVersion + 1};
  try {
    decode_layer(bytes, "layer");
    FAIL() << "no exception";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("version " + std::to_string(kLayerWireVersion + 1)),
              std::string::npos)
        << e.what();
  }
}

TEST(LayerWire, HugeLengthThrowsWithoutAllocating) {
  auto bytes = encode_layer(make_layer(3, 2, 5));
  for (size_t i = 12; i < 20; ++i)
    bytes[i] = std::byte{0xff};  // name length 2^64 - 1
  EXPECT_THROW(decode_layer(bytes, "layer"), InputError);
}

TEST(LayerWire, BadBoolThrows) {
  LayerRecord layer;
  layer.stats.stopped_early = true;
  auto bytes = encode_layer(layer);
  const LayerRecord other;
  const auto reference = encode_layer(other);
  ASSERT_EQ(bytes.size(), reference.size());
  size_t at = 0;
  while (bytes[at] == reference[at])
    ++at;  // the one byte that differs: stopped_early
  bytes[at] = std::byte{2};
  EXPECT_THROW(decode_layer(bytes, "layer"), InputError);
}

TEST(LayerWire, UnknownEnumValueThrows) {
  LayerRecord layer;
  layer.source_dtype = DType::BF16;  // 2
  auto bytes = encode_layer(layer);
  const auto reference = encode_layer(LayerRecord{});
  ASSERT_EQ(bytes.size(), reference.size());
  size_t at = 0;
  while (bytes[at] == reference[at])
    ++at;  // the first byte of source_dtype
  bytes[at] = std::byte{9};
  EXPECT_THROW(decode_layer(bytes, "layer"), InputError);
}

TEST(LayerWire, GarbageThrows) {
  std::vector<std::byte> garbage(200);
  for (size_t i = 0; i < garbage.size(); ++i)
    garbage[i] = std::byte(i * 37 + 11);
  EXPECT_THROW(decode_layer(garbage, "layer"), InputError);
  EXPECT_THROW(decode_layer({}, "layer"), InputError);
}

}  // namespace
}  // namespace pgkm::io
