// The layer wire encoding (io/layer_wire.h): round trips and hostile inputs.
#include <gtest/gtest.h>

#include <bit>
#include <cstring>
#include <limits>

#include "core/errors.h"
#include "io/layer_wire.h"

namespace pgkm::io {
namespace {

// A layer with every field set to a value distinct from its default.
ArchiveLayer make_layer(int64_t k, int64_t b, int64_t n_codes) {
  ArchiveLayer l;
  l.name = "encoder.layers.0.fc1.weight";
  l.shape = {n_codes, b, -1, std::numeric_limits<int64_t>::max()};
  l.source_dtype = "BF16";
  l.module_type = "Linear";
  l.block_size = b;
  l.n_centroids = k;
  l.algorithm = "pg-base";
  l.iterations = 15;
  l.empty_clusters = 2;
  l.initial_empty = 5;
  l.objective = 1234.5678901234567;
  l.resolution_rounds = 7;
  l.seconds = -0.0;
  l.distinct_vectors = n_codes - 1;
  l.clustered_points = n_codes - 2;
  l.stopped_early = true;
  l.source_digest = "sha256:" + std::string(64, 'a');
  l.settings_digest = std::string("bin\0ary", 7);
  l.centroids_f16 = false;
  for (int64_t i = 0; i < k * b; ++i)
    l.centroids.push_back(0.25f * static_cast<float>(i) - 1.0f);
  l.centroids.back() = std::numeric_limits<float>::denorm_min();
  for (int64_t i = 0; i < n_codes; ++i)
    l.codes.push_back(static_cast<uint32_t>(i % k));
  for (int64_t c = 0; c < k; ++c)
    l.counts.push_back(uint64_t{1} << (31 - c % 32));
  return l;
}

void expect_same(const ArchiveLayer& a, const ArchiveLayer& b) {
  EXPECT_EQ(a.name, b.name);
  EXPECT_EQ(a.shape, b.shape);
  EXPECT_EQ(a.source_dtype, b.source_dtype);
  EXPECT_EQ(a.module_type, b.module_type);
  EXPECT_EQ(a.block_size, b.block_size);
  EXPECT_EQ(a.n_centroids, b.n_centroids);
  EXPECT_EQ(a.algorithm, b.algorithm);
  EXPECT_EQ(a.iterations, b.iterations);
  EXPECT_EQ(a.empty_clusters, b.empty_clusters);
  EXPECT_EQ(a.initial_empty, b.initial_empty);
  EXPECT_EQ(std::bit_cast<uint64_t>(a.objective), std::bit_cast<uint64_t>(b.objective));
  EXPECT_EQ(a.resolution_rounds, b.resolution_rounds);
  EXPECT_EQ(std::bit_cast<uint64_t>(a.seconds), std::bit_cast<uint64_t>(b.seconds));
  EXPECT_EQ(a.distinct_vectors, b.distinct_vectors);
  EXPECT_EQ(a.clustered_points, b.clustered_points);
  EXPECT_EQ(a.stopped_early, b.stopped_early);
  EXPECT_EQ(a.source_digest, b.source_digest);
  EXPECT_EQ(a.settings_digest, b.settings_digest);
  EXPECT_EQ(a.centroids_f16, b.centroids_f16);
  ASSERT_EQ(a.centroids.size(), b.centroids.size());
  EXPECT_EQ(0, std::memcmp(a.centroids.data(), b.centroids.data(), 4 * a.centroids.size()));
  EXPECT_EQ(a.codes, b.codes);
  EXPECT_EQ(a.counts, b.counts);
}

TEST(LayerWire, RoundTripSmall) {
  const ArchiveLayer layer = make_layer(3, 2, 5);
  expect_same(layer, decode_layer(encode_layer(layer), "layer"));
}

TEST(LayerWire, RoundTripLarge) {
  const ArchiveLayer layer = make_layer(256, 8, 100'000);
  const auto bytes = encode_layer(layer);
  EXPECT_GT(bytes.size(), 4 * 100'000u);
  expect_same(layer, decode_layer(bytes, "layer"));
}

TEST(LayerWire, RoundTripDefaultLayer) {
  expect_same(ArchiveLayer{}, decode_layer(encode_layer(ArchiveLayer{}), "layer"));
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
  bytes[8] = std::byte{2};
  try {
    decode_layer(bytes, "layer");
    FAIL() << "no exception";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("version 2"), std::string::npos) << e.what();
  }
}

TEST(LayerWire, HugeLengthThrowsWithoutAllocating) {
  auto bytes = encode_layer(make_layer(3, 2, 5));
  for (size_t i = 12; i < 20; ++i)
    bytes[i] = std::byte{0xff};  // name length 2^64 - 1
  EXPECT_THROW(decode_layer(bytes, "layer"), InputError);
}

TEST(LayerWire, BadBoolThrows) {
  ArchiveLayer layer;
  layer.stopped_early = true;
  auto bytes = encode_layer(layer);
  const ArchiveLayer other;
  const auto reference = encode_layer(other);
  ASSERT_EQ(bytes.size(), reference.size());
  size_t at = 0;
  while (bytes[at] == reference[at])
    ++at;  // the one byte that differs: stopped_early
  bytes[at] = std::byte{2};
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
