// safetensors reading, writing and validation; every malformed file is built byte by byte.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <set>

#include "core/digest.h"
#include "core/errors.h"
#include "io/safetensors.h"
#include "tests/temp_files.h"

namespace pgkm::io {
namespace {

namespace fs = std::filesystem;

// File bytes: u64 little-endian `length` (the header's own size when not given), the
// header text, then `data_bytes` bytes 0, 1, 2, ...
std::string raw_file(const std::string& header, size_t data_bytes = 0,
                     std::optional<uint64_t> length = std::nullopt) {
  const uint64_t n = length.value_or(header.size());
  std::string out;
  for (int i = 0; i < 8; ++i)
    out.push_back(static_cast<char>((n >> (8 * i)) & 0xff));
  out += header;
  for (size_t i = 0; i < data_bytes; ++i)
    out.push_back(static_cast<char>(i));
  return out;
}

std::string entry(const std::string& dtype, const std::string& shape, uint64_t begin,
                  uint64_t end) {
  return "{\"dtype\":\"" + dtype + "\",\"shape\":" + shape + ",\"data_offsets\":[" +
         std::to_string(begin) + "," + std::to_string(end) + "]}";
}

template <typename T>
std::span<const std::byte> as_bytes_of(const std::vector<T>& v) {
  return std::as_bytes(std::span<const T>(v));
}

void expect_input_error(const std::function<void()>& f, const std::string& context,
                        const std::string& phrase) {
  try {
    f();
    ADD_FAILURE() << "no error; expected one mentioning " << phrase;
  } catch (const InputError& e) {
    EXPECT_EQ(e.context(), context);
    const std::string what = e.what();
    EXPECT_NE(what.find(fs::path(context).filename().string()), std::string::npos) << what;
    EXPECT_NE(what.find(phrase), std::string::npos) << what;
  }
}

class Safetensors : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::path(::testing::TempDir()) /
           ("pgkm_st_" + std::string(info->name()) + "_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string write_raw(const std::string& name, const std::string& bytes) const {
    const std::string path = (dir_ / name).string();
    std::ofstream(path, std::ios::binary) << bytes;
    return path;
  }

  // Writes `bytes` as model.safetensors and expects open to fail mentioning `phrase`.
  void expect_bad_file(const std::string& bytes, const std::string& phrase) const {
    const std::string path = write_raw("model.safetensors", bytes);
    expect_input_error([&] { SafetensorsFile::open(path); }, path, phrase);
  }

  std::string write_index(const std::string& weight_map) const {
    return write_raw("model.safetensors.index.json",
                     "{\"metadata\":{\"total_size\":64},\"weight_map\":" + weight_map + "}");
  }

  fs::path dir_;
};

TEST_F(Safetensors, RoundTripKeepsDtypesShapesBytesAndMetadata) {
  const std::vector<float> f32 = {1, -2, 3.5f, 4, 5, 6};
  const std::vector<uint16_t> f16 = {0x3c00, 0xc000, 0x7bff, 0};
  const std::vector<uint16_t> bf16 = {0x3f80, 0xbf80, 0x4049, 0x7f80};
  const std::vector<int64_t> i64 = {-1, 1LL << 40, 7};
  const std::string path = (dir_ / "out.safetensors").string();
  write_safetensors(path,
                    {{"w.f32", "F32", {2, 3}, as_bytes_of(f32)},
                     {"a.f16", "F16", {4}, as_bytes_of(f16)},
                     {"b.bf16", "BF16", {2, 1, 2}, as_bytes_of(bf16)},
                     {"ids", "I64", {3}, as_bytes_of(i64)},
                     {"scalar", "F32", {}, as_bytes_of(f32).first(4)},
                     {"empty", "F32", {0, 4}, {}}},
                    {{"format", "pt"}});
  EXPECT_FALSE(testing::has_temporary_next_to(path));

  const SafetensorsFile file = SafetensorsFile::open(path);
  std::vector<std::string> names;
  for (const TensorInfo& t : file.tensors())
    names.push_back(t.name);
  EXPECT_EQ(names,
            (std::vector<std::string>{"a.f16", "b.bf16", "empty", "ids", "scalar", "w.f32"}));
  EXPECT_EQ(file.metadata(), (std::map<std::string, std::string>{{"format", "pt"}}));

  const auto check = [&](const std::string& name, const std::string& dtype,
                         const std::vector<int64_t>& shape, std::span<const std::byte> want) {
    const TensorInfo* t = file.find(name);
    ASSERT_NE(t, nullptr) << name;
    EXPECT_EQ(t->dtype, dtype);
    EXPECT_EQ(t->shape, shape);
    EXPECT_EQ(t->file, path);
    const auto got = file.bytes(*t);
    ASSERT_EQ(got.size(), want.size()) << name;
    EXPECT_EQ(std::memcmp(got.data(), want.data(), want.size()), 0) << name;
  };
  check("w.f32", "F32", {2, 3}, as_bytes_of(f32));
  check("a.f16", "F16", {4}, as_bytes_of(f16));
  check("b.bf16", "BF16", {2, 1, 2}, as_bytes_of(bf16));
  check("ids", "I64", {3}, as_bytes_of(i64));
  check("scalar", "F32", {}, as_bytes_of(f32).first(4));
  check("empty", "F32", {0, 4}, {});
  EXPECT_EQ(file.find("b.bf16")->quantizable(), DType::BF16);
  EXPECT_EQ(file.find("ids")->quantizable(), std::nullopt);
  EXPECT_EQ(file.find("w.f32")->numel(), 6);
  EXPECT_EQ(file.find("scalar")->numel(), 1);
  EXPECT_EQ(file.find("nope"), nullptr);

  // The header is padded so that the data section starts 8-byte aligned.
  std::ifstream in(path, std::ios::binary);
  uint64_t n = 0;
  in.read(reinterpret_cast<char*>(&n), 8);
  EXPECT_EQ(n % 8, 0u);

  const SafetensorsModel model = SafetensorsModel::open(path);
  EXPECT_EQ(model.files(), std::vector<std::string>{path});
  EXPECT_EQ(model.tensors().size(), 6u);
}

TEST_F(Safetensors, FailedWriteLeavesNothingBehind) {
  const std::vector<float> data(5, 1.0f);
  const std::string path = (dir_ / "bad.safetensors").string();
  expect_input_error(
      [&] {
        write_safetensors(path, {{"w", "F32", {2, 3}, as_bytes_of(data)}}, {});
      },
      path, "data holds 20 bytes but shape [2, 3] of F32 needs 24");
  expect_input_error(
      [&] {
        write_safetensors(path, {{"w", "F12", {5}, as_bytes_of(data)}}, {});
      },
      path, "unknown dtype 'F12'");
  EXPECT_FALSE(fs::exists(path));
  EXPECT_FALSE(testing::has_temporary_next_to(path));
  const std::string unwritable = (dir_ / "no_such_dir" / "x.safetensors").string();
  EXPECT_THROW(write_safetensors(unwritable, {{"w", "F32", {5}, as_bytes_of(data)}}, {}),
               SystemError);
}

TEST_F(Safetensors, AcceptsPaddingZeroSizeTensorsAnywhereAndUntouchedData) {
  const std::string header =
      "{\"a\":" + entry("F32", "[2]", 0, 8) + ",\"z\":" + entry("F16", "[3, 0]", 4, 4) +
      ",\"u\":" + entry("U8", "[4]", 8, 12) + ",\"__metadata__\":{\"k\":\"v\"}}    ";
  const std::string path = write_raw("ok.safetensors", raw_file(header, 16));
  const SafetensorsFile f = SafetensorsFile::open(path);
  ASSERT_EQ(f.tensors().size(), 3u);
  EXPECT_EQ(f.bytes(*f.find("u"))[0], std::byte{8});
  EXPECT_TRUE(f.bytes(*f.find("z")).empty());
  EXPECT_EQ(f.metadata().at("k"), "v");
}

TEST_F(Safetensors, RejectsFileShorterThanLengthField) {
  expect_bad_file(std::string("\x02\x00\x00", 3), "3 bytes, shorter than the 8-byte header length");
  expect_bad_file("", "0 bytes, shorter than the 8-byte header length");
}

TEST_F(Safetensors, RejectsHeaderLengthBeyondFile) {
  expect_bad_file(raw_file("{}", 0, 1000), "header length 1000 exceeds the 2 bytes after");
}

TEST_F(Safetensors, RejectsHeaderLengthZero) {
  expect_bad_file(raw_file("{}", 0, 0), "header length 0 is too small");
}

TEST_F(Safetensors, RejectsHeaderLengthOverLimit) {
  const std::string bytes = raw_file("{}", 0, 200ull << 20);
  expect_input_error([&] { parse_header(std::as_bytes(std::span(bytes)), "big.safetensors"); },
                     "big.safetensors", "exceeds the limit of 104857600 bytes");
}

TEST_F(Safetensors, RejectsHeaderThatIsNotJson) {
  expect_bad_file(raw_file("{\"a\": ", 0), "header is not valid JSON");
  expect_bad_file(raw_file("{\"\xff\":1}", 0), "header is not valid JSON");
}

TEST_F(Safetensors, RejectsHeaderThatIsNotAnObject) {
  expect_bad_file(raw_file("[1, 2]", 0), "header [1,2] is not a JSON object");
}

TEST_F(Safetensors, RejectsDuplicateTensorName) {
  const std::string e = entry("U8", "[1]", 0, 1);
  expect_bad_file(raw_file("{\"a\":" + e + ",\"a\":" + e + "}", 1), "duplicate key 'a'");
  expect_bad_file(raw_file("{\"a\":{\"dtype\":\"U8\",\"dtype\":\"U8\",\"shape\":[1],"
                           "\"data_offsets\":[0,1]}}",
                           1),
                  "duplicate key 'dtype'");
}

TEST_F(Safetensors, RejectsUnknownDtype) {
  expect_bad_file(raw_file("{\"w\":" + entry("F12", "[1]", 0, 4) + "}", 4),
                  "tensor 'w': unknown dtype 'F12'");
}

TEST_F(Safetensors, RejectsNegativeDimension) {
  expect_bad_file(raw_file("{\"w\":" + entry("F32", "[3, -2]", 0, 4) + "}", 4),
                  "tensor 'w': shape [3, -2] has negative dimension -2");
}

TEST_F(Safetensors, RejectsBadShapes) {
  expect_bad_file(raw_file("{\"w\":" + entry("F32", "[4294967296, 4294967296]", 0, 4) + "}", 4),
                  "tensor 'w': shape [4294967296, 4294967296] element count overflows");
  expect_bad_file(raw_file("{\"w\":" + entry("F64", "[4611686018427387904]", 0, 4) + "}", 4),
                  "needs more than 2^64 bytes");
  expect_bad_file(raw_file("{\"w\":" + entry("F32", "[1.5]", 0, 4) + "}", 4),
                  "has dimension 1.5, not a 64-bit integer");
  expect_bad_file(raw_file("{\"w\":" + entry("U8", "[1,1,1,1,1,1,1,1,1]", 0, 1) + "}", 1),
                  "is not an array of at most 8 integers");
}

TEST_F(Safetensors, RejectsDataOffsetsBeyondData) {
  expect_bad_file(raw_file("{\"w\":" + entry("F32", "[4]", 0, 16) + "}", 8),
                  "tensor 'w': data_offsets [0, 16]: end is beyond the data section of 8 bytes");
}

TEST_F(Safetensors, RejectsBeginAfterEnd) {
  expect_bad_file(raw_file("{\"w\":" + entry("F32", "[1]", 8, 4) + "}", 8),
                  "tensor 'w': data_offsets [8, 4]: begin 8 > end 4");
  expect_bad_file(raw_file("{\"w\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[-1,0]}}", 8),
                  "is not a pair [begin, end] of unsigned 64-bit integers");
}

TEST_F(Safetensors, RejectsSizeMismatchWithShape) {
  expect_bad_file(
      raw_file("{\"encoder.layer.0.fc1.weight\":" + entry("F32", "[5, 6]", 0, 100) + "}", 120),
      "tensor 'encoder.layer.0.fc1.weight': data_offsets [0, 100] hold 100 bytes but "
      "shape [5, 6] of F32 needs 120");
}

TEST_F(Safetensors, RejectsOverlappingTensors) {
  expect_bad_file(raw_file("{\"a\":" + entry("F32", "[4]", 0, 16) +
                               ",\"b\":" + entry("F32", "[4]", 8, 24) + "}",
                           24),
                  "tensors 'a' data_offsets [0, 16] and 'b' data_offsets [8, 24] overlap");
}

TEST_F(Safetensors, RejectsMissingDtype) {
  expect_bad_file(raw_file("{\"w\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4),
                  "tensor 'w': missing key 'dtype'");
}

TEST_F(Safetensors, RejectsUnknownKeyInEntry) {
  expect_bad_file(raw_file("{\"w\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1],"
                           "\"foo\":1}}",
                           1),
                  "tensor 'w': unknown key 'foo'");
}

TEST_F(Safetensors, RejectsNonStringMetadataValue) {
  expect_bad_file(raw_file("{\"__metadata__\":{\"k\":3}}", 0),
                  "__metadata__ value for key 'k' is 3, not a string");
  expect_bad_file(raw_file("{\"__metadata__\":[]}", 0), "__metadata__ [] is not an object");
}

TEST_F(Safetensors, RejectsDeepNesting) {
  expect_bad_file(raw_file("{\"w\":{\"shape\":[[1]]}}", 0), "header nests deeper than 3 levels");
}

TEST_F(Safetensors, ReportsMissingFile) {
  const std::string path = (dir_ / "absent.safetensors").string();
  expect_input_error([&] { SafetensorsModel::open(path); }, path, "No such file");
}

// Two shards and an index, as Hugging Face writes them.
class ShardedModel : public Safetensors {
 protected:
  void SetUp() override {
    Safetensors::SetUp();
    write_safetensors((dir_ / "s1.safetensors").string(),
                      {{"a", "F32", {2}, as_bytes_of(a_)}, {"b", "F32", {1}, as_bytes_of(b_)}}, {});
    write_safetensors((dir_ / "s2.safetensors").string(), {{"c", "F32", {1}, as_bytes_of(c_)}}, {});
  }
  std::string dir() const { return dir_.string(); }
  std::string index() const { return (dir_ / "model.safetensors.index.json").string(); }

  std::vector<float> a_ = {1, 2}, b_ = {3}, c_ = {4};
};

TEST_F(ShardedModel, OpensAllShardsThroughTheIndex) {
  write_index(R"({"a":"s1.safetensors","b":"s1.safetensors","c":"s2.safetensors"})");
  const SafetensorsModel m = SafetensorsModel::open(dir());
  ASSERT_EQ(m.tensors().size(), 3u);
  EXPECT_EQ(m.tensors()[2].name, "c");
  EXPECT_EQ(m.files(), (std::vector<std::string>{(dir_ / "s1.safetensors").string(),
                                                 (dir_ / "s2.safetensors").string()}));
  const TensorInfo* c = m.find("c");
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->file, (dir_ / "s2.safetensors").string());
  float v = 0;
  std::memcpy(&v, m.bytes(*c).data(), 4);
  EXPECT_EQ(v, 4.0f);
  EXPECT_EQ(m.find("zz"), nullptr);
}

TEST_F(ShardedModel, OpensDirectoryWithSingleFile) {
  write_safetensors((dir_ / "model.safetensors").string(), {{"x", "F32", {1}, as_bytes_of(c_)}},
                    {});
  const SafetensorsModel m = SafetensorsModel::open(dir());
  ASSERT_EQ(m.tensors().size(), 1u);
  EXPECT_EQ(m.tensors()[0].name, "x");
}

TEST_F(ShardedModel, RejectsIndexNamingMissingShard) {
  write_index(R"({"a":"s1.safetensors","b":"s1.safetensors","c":"s3.safetensors"})");
  expect_input_error([&] { SafetensorsModel::open(dir()); }, index(),
                     "shard 's3.safetensors' named by weight_map (for 'c') does not exist");
}

TEST_F(ShardedModel, RejectsShardNameLeavingTheDirectory) {
  write_index(R"({"a":"../s1.safetensors"})");
  expect_input_error([&] { SafetensorsModel::open(dir()); }, index(),
                     "shard name '../s1.safetensors' is not a plain file name");
  write_index(R"({"a":".."})");
  expect_input_error([&] { SafetensorsModel::open(dir()); }, index(), "not a plain file name");
}

TEST_F(ShardedModel, RejectsIndexedTensorAbsentFromShard) {
  write_index(R"({"a":"s1.safetensors","b":"s1.safetensors","c":"s2.safetensors",)"
              R"("d":"s2.safetensors"})");
  expect_input_error(
      [&] { SafetensorsModel::open(dir()); }, index(),
      "tensor 'd' is mapped to shard 's2.safetensors' but that shard does not hold it");
}

TEST_F(ShardedModel, RejectsShardTensorMissingFromWeightMap) {
  write_index(R"({"a":"s1.safetensors","c":"s2.safetensors"})");
  expect_input_error([&] { SafetensorsModel::open(dir()); }, index(),
                     "tensor 'b' in shard 's1.safetensors' is missing from weight_map");
}

TEST_F(ShardedModel, RejectsTensorInTwoShards) {
  write_safetensors((dir_ / "s2.safetensors").string(),
                    {{"b", "F32", {1}, as_bytes_of(b_)}, {"c", "F32", {1}, as_bytes_of(c_)}}, {});
  write_index(R"({"a":"s1.safetensors","b":"s1.safetensors","c":"s2.safetensors"})");
  expect_input_error([&] { SafetensorsModel::open(dir()); }, index(),
                     "tensor 'b' is in shard 's2.safetensors' and in shard 's1.safetensors'");
}

TEST_F(ShardedModel, RejectsBadShardHeaderNamingTheShard) {
  const std::string shard = write_raw("s2.safetensors", raw_file("{}", 0, 0));
  write_index(R"({"a":"s1.safetensors","b":"s1.safetensors","c":"s2.safetensors"})");
  expect_input_error([&] { SafetensorsModel::open(dir()); }, shard, "header length 0");
}

TEST(Digest, StableAndSensitiveToEveryByte) {
  std::vector<std::byte> data(100);
  for (size_t i = 0; i < data.size(); ++i)
    data[i] = std::byte(i * 7);
  const uint64_t d = digest64(data);
  EXPECT_EQ(digest64(data), d);
  std::set<uint64_t> seen = {d};
  for (size_t i = 0; i < data.size(); ++i) {
    data[i] ^= std::byte{1};
    EXPECT_TRUE(seen.insert(digest64(data)).second) << "byte " << i;
    data[i] ^= std::byte{1};
  }
  // Inputs differing only by trailing zero bytes differ through their length.
  std::set<uint64_t> zeros;
  for (size_t n = 0; n < 40; ++n) {
    EXPECT_TRUE(zeros.insert(digest64(std::vector<std::byte>(n))).second) << n;
  }
}

// Resume compares digests stored by earlier runs: these values must never change.
TEST(Digest, PinnedValues) {
  std::vector<std::byte> data(1000);
  for (size_t i = 0; i < data.size(); ++i)
    data[i] = std::byte(i % 251);
  EXPECT_EQ(digest_hex(digest64({})), "cb65a1d9201d79e5");
  EXPECT_EQ(digest_hex(digest64(std::span(data).first(7))), "825a858b06b37bc3");
  EXPECT_EQ(digest_hex(digest64(data)), "acaa47c68c40a3da");
  EXPECT_EQ(digest_hex(0x0123456789abcdefull), "0123456789abcdef");
}

}  // namespace
}  // namespace pgkm::io
