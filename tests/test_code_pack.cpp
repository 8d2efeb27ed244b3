// Codes packed at ceil(log2 K) bits (io/code_pack.h, archive schema v2): every K from 2
// to 65536 round-trips, the stream is numpy's unpackbits(bitorder="little") order, and
// sizes match the plan (engine/size_plan.h).
#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "engine/size_plan.h"
#include "io/code_pack.h"

namespace pgkm::io {
namespace {

TEST(CodeBits, IsCeilLog2AtLeastOne) {
  EXPECT_EQ(code_bits(1), 1);
  EXPECT_EQ(code_bits(2), 1);
  EXPECT_EQ(code_bits(3), 2);
  EXPECT_EQ(code_bits(256), 8);
  EXPECT_EQ(code_bits(257), 9);
  EXPECT_EQ(code_bits(768), 10);
  EXPECT_EQ(code_bits(3072), 12);
  EXPECT_EQ(code_bits(4096), 12);
  EXPECT_EQ(code_bits(65536), 16);
  EXPECT_EQ(code_bits(int64_t{1} << 32), 32);
}

TEST(CodePack, EveryKFrom2To65536RoundTrips) {
  std::mt19937 gen(12345);
  for (int64_t k = 2; k <= 65536; ++k) {
    const int bits = code_bits(k);
    // Lengths that end the stream at every bit offset within a byte.
    const size_t n = 1 + static_cast<size_t>(k % 17);
    std::uniform_int_distribution<uint32_t> code(0, static_cast<uint32_t>(k - 1));
    std::vector<uint32_t> codes(n);
    for (uint32_t& c : codes)
      c = code(gen);
    codes.front() = static_cast<uint32_t>(k - 1);  // the largest code, every bit it has
    codes.back() = 0;
    const std::vector<uint8_t> packed = pack_codes(codes, bits);
    ASSERT_EQ(packed.size(), packed_code_bytes(n, bits)) << "K=" << k;
    std::vector<uint32_t> back(n);
    ASSERT_TRUE(unpack_codes(packed, bits, back)) << "K=" << k;
    ASSERT_EQ(back, codes) << "K=" << k;
  }
}

TEST(CodePack, LongStreamsOfEveryWidth) {
  std::mt19937 gen(7);
  for (int bits = 1; bits <= 32; ++bits) {
    const uint64_t max = bits == 32 ? 0xffffffffu : (uint64_t{1} << bits) - 1;
    std::uniform_int_distribution<uint64_t> code(0, max);
    std::vector<uint32_t> codes(1001);
    for (uint32_t& c : codes)
      c = static_cast<uint32_t>(code(gen));
    std::vector<uint32_t> back(codes.size());
    ASSERT_TRUE(unpack_codes(pack_codes(codes, bits), bits, back)) << bits;
    EXPECT_EQ(back, codes) << bits;
  }
}

TEST(CodePack, LittleEndianBitOrder) {
  // 3-bit codes 5 (101), 3 (011), 7 (111): stream bits 1,0,1, 1,1,0, 1,1,1 (LSB first).
  const std::vector<uint32_t> codes = {5, 3, 7};
  const std::vector<uint8_t> packed = pack_codes(codes, 3);
  ASSERT_EQ(packed.size(), 2u);
  EXPECT_EQ(packed[0], 0b11011101);
  EXPECT_EQ(packed[1], 0b00000001);
  // 12-bit codes as for K = 3072/4096: two codes in three bytes.
  const std::vector<uint8_t> wide = pack_codes(std::vector<uint32_t>{0xabc, 0x123}, 12);
  EXPECT_EQ(wide, (std::vector<uint8_t>{0xbc, 0x3a, 0x12}));
}

TEST(CodePack, SetPaddingBitIsRejected) {
  std::vector<uint8_t> packed = pack_codes(std::vector<uint32_t>{1, 2, 3}, 3);  // 9 bits
  packed.back() |= 0x80;
  std::vector<uint32_t> back(3);
  EXPECT_FALSE(unpack_codes(packed, 3, back));
}

TEST(SizePlan, ArchiveBytesOfAQuantizedLayer) {
  // [3072, 768] at b = 4, K = 3072: 589824 codes of 12 bits and f16 centroids.
  const SizeFigures s = quantized_layer_sizes(3072 * 768, 2, 4, 3072, 2);
  EXPECT_EQ(s.source_bytes, 3072u * 768 * 2);
  EXPECT_EQ(s.archive_bytes, 589824u * 12 / 8 + 3072 * 4 * 2);
  EXPECT_DOUBLE_EQ(s.tracker_original_mib, 3072.0 * 768 * 4 / kBytesPerMiB);
}

}  // namespace
}  // namespace pgkm::io
