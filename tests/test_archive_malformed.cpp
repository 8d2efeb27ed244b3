// The archive reader's checks on malformed archives: a valid archive is written, then
// damaged with the HDF5 C API; every damage is an InputError naming the archive.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "core/errors.h"
#include "io/archive.h"
#include "io/archive_schema.h"
#include "io/hdf5_util.h"
#include "tests/archive_test_util.h"

namespace pgkm::io {
namespace {

namespace fs = std::filesystem;

// Malformed archives: a valid one is written, then damaged with the HDF5 C API.
class MalformedArchive : public Archive {
 protected:
  static constexpr const char* kLayer = "layers/enc.fc1.weight";

  void SetUp() override {
    Archive::SetUp();
    ArchiveWriter writer(path_, make_header());
    writer.write_layer(make_layer("enc.fc1.weight", {8, 16}, 4, 8, true));
    writer.write_kept(make_kept<float>("enc.fc1.bias", "F32", {8}, std::vector<float>(8, 1.f)));
    writer.finalize();
  }

  // Rewrites the root attribute format_version. Version 1 also rewrites the layer the
  // v1 way (one uint8 per code, and a counts dataset) for the tests below to damage.
  void set_version(int64_t version) {
    damage([&](const H5Site& site, hid_t file) {
      ASSERT_GE(H5Adelete(file, "format_version"), 0);
      write_attr_int(site, file, "format_version", version);
      if (version != 1) return;
      H5Group g = open_group(site, file, kLayer);
      ASSERT_GE(H5Ldelete(g.get(), "codes", H5P_DEFAULT), 0);
      std::vector<uint8_t> codes(32, 1);
      write_dataset(site, g.get(), "codes", H5T_STD_U8LE, H5T_NATIVE_UINT8, {32}, codes.data());
      std::vector<uint32_t> counts(8, 0);
      counts[1] = 32;
      write_dataset(site, g.get(), "counts", H5T_STD_U32LE, H5T_NATIVE_UINT32, {8}, counts.data());
    });
    if (version == 1) {
      EXPECT_NO_THROW(ArchiveReader::open(path_).read_layer("enc.fc1.weight"));
    }
  }

  // Opens the archive for writing and hands the file id to `damage`.
  void damage(const std::function<void(const H5Site&, hid_t)>& damage) {
    const H5Site site(path_, false);
    H5File file = open_file(site, true);
    damage(site, file.get());
  }

  // Replaces dataset `name` of object `parent` by one of `type` and `dims` from `data`.
  void replace_dataset(const std::string& parent, const std::string& name, hid_t type,
                       const std::vector<hsize_t>& dims, const void* data) {
    damage([&](const H5Site& site, hid_t file) {
      H5Group group = open_group(site, file, parent);
      ASSERT_GE(H5Ldelete(group.get(), name.c_str(), H5P_DEFAULT), 0);
      write_dataset(site, group.get(), name, type, type, dims, data);
    });
  }

  // `action` must throw an InputError whose context is the archive and whose message
  // contains every one of `parts`.
  void expect_error(const std::function<void()>& action, const std::vector<std::string>& parts) {
    try {
      action();
      FAIL() << "no error; expected one mentioning " << parts.front();
    } catch (const InputError& e) {
      EXPECT_EQ(e.context(), path_);
      EXPECT_NE(std::string(e.what()).find(path_), std::string::npos) << e.what();
      for (const auto& part : parts) {
        EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
      }
    }
  }
  void expect_layer_error(const std::vector<std::string>& parts) {
    expect_error([&] { ArchiveReader::open(path_).read_layer("enc.fc1.weight"); }, parts);
  }
};

TEST_F(MalformedArchive, ValidBaseReads) {
  EXPECT_NO_THROW(ArchiveReader::open(path_).read_layer("enc.fc1.weight"));
  EXPECT_NO_THROW(ArchiveReader::open(path_).read_kept("enc.fc1.bias"));
}

TEST_F(MalformedArchive, MissingFile) {
  fs::remove(path_);
  expect_error([&] { ArchiveReader::open(path_); }, {"no such file"});
}

TEST_F(MalformedArchive, NotHdf5) {
  { std::ofstream(path_, std::ios::trunc) << "{\"format\": \"pgkm\"}"; }
  expect_error([&] { ArchiveReader::open(path_); }, {"not an HDF5 file"});
}

TEST_F(MalformedArchive, Hdf5WithAnotherFormat) {
  const H5Site site(path_, false);
  {
    H5File file = create_file(site);
    write_attr_string(site, file.get(), "format", "zarr");
  }
  expect_error([&] { ArchiveReader::open(path_); }, {"not a pgkm archive", "'zarr'"});
  { H5File file = create_file(site); }
  expect_error([&] { ArchiveReader::open(path_); }, {"not a pgkm archive", "'format'"});
}

TEST_F(MalformedArchive, FutureFormatVersion) {
  set_version(5);
  expect_error([&] { ArchiveReader::open(path_); }, {"format_version 5", "newer", "reads (4)"});
}

TEST_F(MalformedArchive, MissingRootAttribute) {
  damage([](const H5Site&, hid_t file) { ASSERT_GE(H5Adelete(file, "seed"), 0); });
  expect_error([&] { ArchiveReader::open(path_); }, {"root group", "'seed' is missing"});
}

TEST_F(MalformedArchive, LayerWithoutCompleteMark) {
  damage([](const H5Site&, hid_t file) {
    ASSERT_GE(H5Adelete_by_name(file, kLayer, "complete", H5P_DEFAULT), 0);
  });
  expect_layer_error({"layer 'enc.fc1.weight' is incomplete"});
}

TEST_F(MalformedArchive, LayerCompleteMarkZero) {
  damage([](const H5Site& site, hid_t file) {
    H5Group g = open_group(site, file, kLayer);
    ASSERT_GE(H5Adelete(g.get(), "complete"), 0);
    write_attr_int(site, g.get(), "complete", 0);
  });
  expect_layer_error({"layer 'enc.fc1.weight' is incomplete", "complete = 0"});
}

TEST_F(MalformedArchive, MissingLayerAttribute) {
  damage([](const H5Site&, hid_t file) {
    ASSERT_GE(H5Adelete_by_name(file, kLayer, "objective", H5P_DEFAULT), 0);
  });
  expect_layer_error({"layer 'enc.fc1.weight'", "attribute 'objective' is missing"});
}

TEST_F(MalformedArchive, LayerAttributeOfWrongType) {
  damage([](const H5Site& site, hid_t file) {
    H5Group g = open_group(site, file, kLayer);
    ASSERT_GE(H5Adelete(g.get(), "iterations"), 0);
    write_attr_string(site, g.get(), "iterations", "fifteen");
  });
  expect_layer_error({"layer 'enc.fc1.weight'", "attribute 'iterations' is not an integer"});
}

// Schema v1 codes: one unsigned integer per code.
TEST_F(MalformedArchive, CodesOutOfRange) {
  set_version(1);
  std::vector<uint8_t> codes(32, 1);
  codes[17] = 8;  // K = 8
  replace_dataset(kLayer, "codes", H5T_STD_U8LE, {32}, codes.data());
  expect_layer_error({"layer 'enc.fc1.weight'", "codes[17] = 8", "n_centroids 8"});
}

TEST_F(MalformedArchive, CodesOfWrongLengthOrSignedType) {
  set_version(1);
  std::vector<uint8_t> codes(31, 1);
  replace_dataset(kLayer, "codes", H5T_STD_U8LE, {31}, codes.data());
  expect_layer_error({"dataset 'codes' has shape [31], expected [32]"});
  std::vector<int8_t> signed_codes(32, 1);
  replace_dataset(kLayer, "codes", H5T_STD_I8LE, {32}, signed_codes.data());
  expect_layer_error({"dataset 'codes'", "expected an unsigned integer"});
}

TEST_F(MalformedArchive, CodesNeverWritten) {
  damage([](const H5Site& site, hid_t file) {
    H5Group g = open_group(site, file, kLayer);
    ASSERT_GE(H5Ldelete(g.get(), "codes", H5P_DEFAULT), 0);
    const hsize_t n = 12;  // 32 codes of 3 bits
    H5Dataspace space(H5Screate_simple(1, &n, nullptr));
    H5Dataset d(H5Dcreate2(g.get(), "codes", H5T_STD_U8LE, space.get(), H5P_DEFAULT, H5P_DEFAULT,
                           H5P_DEFAULT));
    ASSERT_TRUE(d.valid());
  });
  expect_layer_error({"dataset 'codes' stores 0 bytes", "truncated or unwritten"});
}

// Schema v2 codes: packed at ceil(log2 K) bits (K = 8: 3 bits, 32 codes in 12 bytes).
TEST_F(MalformedArchive, PackedCodesOfWrongLengthTypeOrWidth) {
  std::vector<uint8_t> packed(11, 0);
  replace_dataset(kLayer, "codes", H5T_STD_U8LE, {11}, packed.data());
  expect_layer_error({"dataset 'codes' has shape [11], expected [12]"});
  std::vector<uint16_t> wide(12, 0);
  replace_dataset(kLayer, "codes", H5T_STD_U16LE, {12}, wide.data());
  expect_layer_error({"dataset 'codes'", "expected uint8 (packed codes)"});
  packed.assign(12, 0);
  replace_dataset(kLayer, "codes", H5T_STD_U8LE, {12}, packed.data());
  expect_layer_error({"dataset 'codes'", "attribute 'bits' is missing"});
  damage([](const H5Site& site, hid_t file) {
    H5Dataset d(H5Dopen2(file, "layers/enc.fc1.weight/codes", H5P_DEFAULT));
    write_attr_int(site, d.get(), "bits", 4);
  });
  expect_layer_error({"attribute 'bits' is 4, expected 3"});
}

TEST_F(MalformedArchive, PackedCodesOutOfRangeOrWithPadding) {
  // K = 6: 3-bit codes can say 6 and 7, which are not codes. [5, 4] at b = 4: 5 codes,
  // 15 bits in 2 bytes, so the last bit is padding.
  {
    ArchiveWriter writer(path_, make_header());
    writer.write_layer(make_layer("enc.fc1.weight", {5, 4}, 4, 6, true));
    writer.finalize();
  }
  // Read as schema v2 (no checksums): the codes are rewritten by hand below, and a v3
  // reader would (rightly) report a checksum mismatch before decoding them.
  set_version(2);
  auto write_packed = [&](std::vector<uint8_t> packed) {
    replace_dataset(kLayer, "codes", H5T_STD_U8LE, {packed.size()}, packed.data());
    damage([](const H5Site& site, hid_t file) {
      H5Dataset d(H5Dopen2(file, "layers/enc.fc1.weight/codes", H5P_DEFAULT));
      write_attr_int(site, d.get(), "bits", 3);
    });
  };
  write_packed({0x00, 0x40});  // code 4 = 0b100 in bits 12..14: valid
  EXPECT_NO_THROW(ArchiveReader::open(path_).read_layer("enc.fc1.weight"));
  write_packed({0x00, 0x70});  // code 4 = 0b111 = 7
  expect_layer_error({"codes[4] = 7", "n_centroids 6"});
  write_packed({0x00, 0x80});  // bit 15: padding
  expect_layer_error({"dataset 'codes'", "padding bits"});
}

TEST_F(MalformedArchive, CentroidsOfWrongShape) {
  std::vector<float> centroids(8 * 5, 0.f);
  replace_dataset(kLayer, "centroids", H5T_NATIVE_FLOAT, {8, 5}, centroids.data());
  expect_layer_error({"dataset 'centroids' has shape [8, 5], expected [8, 4]"});
}

TEST_F(MalformedArchive, NonFiniteCentroid) {
  std::vector<float> centroids(8 * 4, 0.f);
  centroids[6] = std::numeric_limits<float>::quiet_NaN();
  replace_dataset(kLayer, "centroids", H5T_NATIVE_FLOAT, {8, 4}, centroids.data());
  expect_layer_error({"centroids value 6 is nan"});
}

TEST_F(MalformedArchive, CountsOfWrongLength) {
  set_version(1);  // v2 stores no counts
  std::vector<uint32_t> counts(7, 4);
  replace_dataset(kLayer, "counts", H5T_NATIVE_UINT32, {7}, counts.data());
  expect_layer_error({"dataset 'counts' has shape [7], expected [8]"});
}

TEST_F(MalformedArchive, MissingDataset) {
  damage([](const H5Site& site, hid_t file) {
    H5Group g = open_group(site, file, kLayer);
    ASSERT_GE(H5Ldelete(g.get(), "centroids", H5P_DEFAULT), 0);
  });
  expect_layer_error({"layer 'enc.fc1.weight': dataset 'centroids' is missing"});
}

TEST_F(MalformedArchive, MissingCountsInVersion1) {
  set_version(1);
  damage([](const H5Site& site, hid_t file) {
    H5Group g = open_group(site, file, kLayer);
    ASSERT_GE(H5Ldelete(g.get(), "counts", H5P_DEFAULT), 0);
  });
  expect_layer_error({"layer 'enc.fc1.weight': dataset 'counts' is missing"});
}

TEST_F(MalformedArchive, KeptTensorSizeMismatch) {
  std::vector<float> values(5, 1.f);
  damage([&](const H5Site& site, hid_t file) {
    H5Group tensors = open_group(site, file, "tensors");
    ASSERT_GE(H5Ldelete(tensors.get(), "enc.fc1.bias", H5P_DEFAULT), 0);
    write_dataset(site, tensors.get(), "enc.fc1.bias", H5T_NATIVE_FLOAT, H5T_NATIVE_FLOAT, {5},
                  values.data());
    H5Dataset d(H5Dopen2(tensors.get(), "enc.fc1.bias", H5P_DEFAULT));
    write_attr_string(site, d.get(), "name", "enc.fc1.bias");
    write_attr_string(site, d.get(), "dtype", "F32");
    write_attr_ints(site, d.get(), "shape", {8});
  });
  expect_error([&] { ArchiveReader::open(path_).read_kept("enc.fc1.bias"); },
               {"tensor 'enc.fc1.bias'", "size mismatch", "holds 20 bytes", "needs 32"});
}

TEST_F(MalformedArchive, KeptTensorUnknownDtype) {
  damage([](const H5Site& site, hid_t file) {
    H5Dataset d(H5Dopen2(file, "tensors/enc.fc1.bias", H5P_DEFAULT));
    ASSERT_GE(H5Adelete(d.get(), "dtype"), 0);
    write_attr_string(site, d.get(), "dtype", "Q4");
  });
  expect_error([&] { ArchiveReader::open(path_).read_kept("enc.fc1.bias"); },
               {"tensor 'enc.fc1.bias'", "unknown dtype 'Q4'"});
}

TEST_F(MalformedArchive, UnknownNames) {
  expect_error([&] { ArchiveReader::open(path_).read_layer("nope"); }, {"no layer named 'nope'"});
  expect_error([&] { ArchiveReader::open(path_).read_kept("nope"); }, {"no tensor named 'nope'"});
}

}  // namespace
}  // namespace pgkm::io
