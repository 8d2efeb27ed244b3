// The HDF5 model archive: round trips, atomic finalize and layer checkpoints (the
// reader's checks on malformed archives: test_archive_malformed.cpp).
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>

#include "core/errors.h"
#include "engine/dtype.h"
#include "engine/size_plan.h"
#include "io/archive.h"
#include "io/archive_schema.h"
#include "io/hdf5_util.h"
#include "io/record_json.h"
#include "tests/archive_test_util.h"
#include "tests/temp_files.h"

namespace pgkm::io {
namespace {

namespace fs = std::filesystem;

// Every kArchive field of the record table, the datasets, and the centroid dtype.
void expect_same_layer(const LayerRecord& got, const LayerRecord& want) {
  EXPECT_EQ(io::layer_json(got, kArchive), io::layer_json(want, kArchive));
  EXPECT_EQ(got.settings.centroid_dtype, want.settings.centroid_dtype);
  const bool f16 = want.settings.centroid_dtype == CentroidDtype::kF16;
  ASSERT_EQ(got.centroids.size(), want.centroids.size());
  for (size_t i = 0; i < want.centroids.size(); ++i) {
    const float expected = f16 ? f16_to_float(float_to_f16(want.centroids[i])) : want.centroids[i];
    ASSERT_EQ(got.centroids[i], expected) << "centroid value " << i;
  }
  EXPECT_EQ(got.codes, want.codes);
  EXPECT_EQ(got.counts, want.counts);
}

// Bytes per element of a stored dataset (the codes' integer width).
size_t stored_type_size(const std::string& path, const std::string& dataset) {
  const H5Site site(path, true);
  H5File file = open_file(site, false);
  return open_dataset(site, file.get(), dataset, dataset).type_size;
}

// Elements of a stored 1-D dataset.
uint64_t stored_elements(const std::string& path, const std::string& dataset) {
  const H5Site site(path, true);
  H5File file = open_file(site, false);
  return open_dataset(site, file.get(), dataset, dataset).n_elements;
}

TEST_F(Archive, EscapesNamesHdf5Reserves) {
  EXPECT_EQ(escape_name("encoder.layers.0.fc1.weight"), "encoder.layers.0.fc1.weight");
  EXPECT_EQ(escape_name("a/b%c"), "a%2Fb%25c");
  EXPECT_EQ(escape_name("."), "%2E");
  EXPECT_EQ(escape_name(".."), "%2E.");
  EXPECT_EQ(escape_name("%2E"), "%252E");
  EXPECT_THROW(escape_name(""), InputError);
}

TEST_F(Archive, HandlesCloseOnceAndMove) {
  H5Dataspace a(H5Screate(H5S_SCALAR));
  ASSERT_TRUE(a.valid());
  const hid_t id = a.get();
  H5Dataspace b(std::move(a));
  EXPECT_FALSE(a.valid());
  EXPECT_EQ(b.get(), id);
  EXPECT_GE(b.close(), 0);
  EXPECT_FALSE(b.valid());
}

TEST_F(Archive, RoundTripsHeaderLayersAndKeptTensors) {
  const std::vector<LayerRecord> layers = {
      make_layer("encoder.layers.0.fc1.weight", {64, 32}, 8, 256, true, 1),
      make_layer("decoder/attn.out_proj.weight", {64, 64}, 4, 3072, false, 2),
      make_layer("%weird/..", {100, 8}, 2, 70000, true, 3),
  };
  const std::vector<KeptTensor> kept = {
      make_kept<float>("encoder.layers.0.fc1.bias", "F32", {4}, {1.f, -2.f, 0.5f, 3e-8f}),
      make_kept<int64_t>("bn/num_batches_tracked", "I64", {}, {123456789012345}),
      make_kept<uint8_t>("mask", "BOOL", {2, 2}, {1, 0, 0, 1}),
      make_kept<uint16_t>("norm.weight", "BF16", {3}, {0x3f80, 0x7fc0, 0x0001}),
      make_kept<double>("scale", "F64", {1, 2}, {1e300, -0.0}),
      make_kept<uint8_t>("empty", "U8", {0, 5}, {}),
  };
  {
    ArchiveWriter writer(path_, make_header());
    for (const auto& l : layers)
      writer.write_layer(l);
    for (const auto& t : kept)
      writer.write_kept(t);
    writer.finalize();
  }
  const ArchiveReader reader = ArchiveReader::open(path_);
  EXPECT_EQ(reader.format_version(), kArchiveFormatVersion);
  const ArchiveHeader& h = reader.header();
  const ArchiveHeader want = make_header();
  EXPECT_EQ(h.tool_version, want.tool_version);
  EXPECT_EQ(h.config_text, want.config_text);
  EXPECT_EQ(h.config_format, want.config_format);
  EXPECT_EQ(h.algorithm, want.algorithm);
  EXPECT_EQ(h.seed, want.seed);
  EXPECT_EQ(h.iterations, want.iterations);
  EXPECT_EQ(h.settings_json, want.settings_json);
  EXPECT_EQ(h.source_files_json, want.source_files_json);
  EXPECT_EQ(h.created_utc, want.created_utc);

  ASSERT_EQ(reader.layer_names().size(), layers.size());
  for (size_t i = 0; i < layers.size(); ++i) {
    EXPECT_EQ(reader.layer_names()[i], layers[i].name);  // in write order
    expect_same_layer(reader.read_layer(layers[i].name), layers[i]);
  }
  // Schema v2: codes packed at ceil(log2 K) bits in a uint8 dataset.
  EXPECT_EQ(stored_type_size(path_, "layers/encoder.layers.0.fc1.weight/codes"), 1u);
  EXPECT_EQ(stored_elements(path_, "layers/encoder.layers.0.fc1.weight/codes"), 64u * 32 / 8);
  EXPECT_EQ(stored_elements(path_, "layers/decoder%2Fattn.out_proj.weight/codes"),
            64u * 64 / 4 * 12 / 8);
  EXPECT_EQ(stored_elements(path_, "layers/%25weird%2F../codes"), (100u * 8 / 2 * 17 + 7) / 8);
  EXPECT_EQ(stored_type_size(path_, "layers/%25weird%2F../centroids"), 2u);

  ASSERT_EQ(reader.kept_names().size(), kept.size());
  for (size_t i = 0; i < kept.size(); ++i) {
    EXPECT_EQ(reader.kept_names()[i], kept[i].name);
    const KeptTensor got = reader.read_kept(kept[i].name);
    EXPECT_EQ(got.name, kept[i].name);
    EXPECT_EQ(got.dtype, kept[i].dtype);
    EXPECT_EQ(got.shape, kept[i].shape);
    EXPECT_EQ(got.bytes, kept[i].bytes) << kept[i].name;
  }
}

// An archive written by pgkm's schema-v1 writer (tests/write_sample_archive.cpp of that
// version), kept as a file: it must read as it always did.
TEST_F(Archive, ReadsVersion1Archives) {
  const std::string fixture = std::string(PGKM_SOURCE_DIR) + "/tests/data/sample_v1.pgkm.h5";
  const ArchiveReader reader = ArchiveReader::open(fixture);
  EXPECT_EQ(reader.format_version(), 1);
  EXPECT_FALSE(reader.read_source_layout().has_value());
  EXPECT_TRUE(reader.read_source_files().empty());
  EXPECT_EQ(reader.header().seed, 42u);
  const std::vector<std::string> names = {"encoder.layers.0.fc1.weight",
                                          "decoder/odd%name.conv.weight"};
  ASSERT_EQ(reader.layer_names(), names);
  const int64_t ks[] = {16, 300};
  const int bs[] = {8, 4};
  for (size_t i = 0; i < names.size(); ++i) {
    const LayerRecord l = reader.read_layer(names[i]);
    EXPECT_EQ(l.settings.kmeans.n_centroids, ks[i]);
    EXPECT_EQ(l.settings.block_size, bs[i]);
    ASSERT_EQ(l.centroids.size(), static_cast<size_t>(ks[i] * bs[i]));
    for (size_t c = 0; c < l.centroids.size(); ++c)
      ASSERT_EQ(l.centroids[c], static_cast<float>(c % 97) * 0.125f - 6.f);
    for (size_t j = 0; j < l.codes.size(); ++j)
      ASSERT_EQ(l.codes[j], (j * 7919) % static_cast<size_t>(ks[i])) << names[i] << " code " << j;
  }
  EXPECT_EQ(reader.read_kept("norm.weight").bytes,
            (std::vector<uint8_t>{0x80, 0x3f, 0x00, 0x40, 0x80, 0xbf, 0x00, 0x00}));
}

TEST_F(Archive, PackedCodesRoundTripForManyK) {
  const int64_t ks[] = {2,   3,   4,    5,    7,    8,    9,    255,   256,   257,
                        767, 768, 3071, 3072, 4095, 4096, 4097, 65535, 65536, 65537};
  {
    ArchiveWriter writer(path_, make_header());
    for (int64_t k : ks) {
      writer.write_layer(make_layer("k" + std::to_string(k) + ".weight", {k, 4}, 1, k, false,
                                    static_cast<uint32_t>(k)));
    }
    writer.finalize();
  }
  const ArchiveReader reader = ArchiveReader::open(path_);
  for (int64_t k : ks) {
    const std::string name = "k" + std::to_string(k) + ".weight";
    expect_same_layer(reader.read_layer(name),
                      make_layer(name, {k, 4}, 1, k, false, static_cast<uint32_t>(k)));
    EXPECT_EQ(stored_elements(path_, "layers/" + name + "/codes"),
              packed_code_bytes(static_cast<uint64_t>(4 * k), code_bits(k)));
  }
}

TEST_F(Archive, SourceLayoutAndFilesRoundTrip) {
  SourceLayout layout;
  layout.indexed = true;
  layout.index_metadata = {{"total_size", 123}};
  layout.shards = {
      {"model-00001-of-00002.safetensors", {{"format", "pt"}}, {"a.weight"}},
      {"model-00002-of-00002.safetensors", {{"format", "pt"}}, {"b.bias", "b.weight"}}};
  const std::vector<SourceFile> files = {
      {"config.json", {'{', '}'}}, {"1_Pooling/config.json", {'[', ']'}}, {"empty.txt", {}}};
  {
    ArchiveWriter writer(path_, make_header());
    writer.write_source(layout, files);
    EXPECT_THROW(writer.write_source(layout, files), InputError);
    writer.finalize();
  }
  const ArchiveReader reader = ArchiveReader::open(path_);
  const std::optional<SourceLayout> got = reader.read_source_layout();
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(layout_json(*got), layout_json(layout));
  const std::vector<SourceFile> got_files = reader.read_source_files();
  ASSERT_EQ(got_files.size(), files.size());
  for (size_t i = 0; i < files.size(); ++i) {
    EXPECT_EQ(got_files[i].path, files[i].path);
    EXPECT_EQ(got_files[i].bytes, files[i].bytes);
  }
}

TEST_F(Archive, UnsafeSourcePathsAreRefused) {
  for (const std::string bad : {"../x", "/etc/passwd", "a//b", "a/./b", "a/../../b", "", "a\\b"}) {
    EXPECT_THROW(check_relative_path(bad, "ctx"), InputError) << bad;
  }
  EXPECT_NO_THROW(check_relative_path("1_Pooling/config.json", "ctx"));
  ArchiveWriter writer(path_, make_header());
  SourceLayout layout;
  layout.shards = {{"model.safetensors", {}, {}}};
  EXPECT_THROW(writer.write_source(layout, {{"../escape", {1}}}), InputError);
}

TEST_F(Archive, FillsCreationTimeWhenEmpty) {
  ArchiveHeader header = make_header();
  header.created_utc.clear();
  ArchiveWriter writer(path_, header);
  writer.finalize();
  const std::string t = ArchiveReader::open(path_).header().created_utc;
  EXPECT_EQ(t.size(), 20u) << t;
  EXPECT_EQ(t.back(), 'Z');
}

TEST_F(Archive, UnfinalizedWriterLeavesNoFileAndKeepsTheOldArchive) {
  { std::ofstream(path_) << "previous archive"; }
  {
    ArchiveWriter writer(path_, make_header());
    writer.write_layer(make_layer("fc.weight", {8, 8}, 4, 4, true));
    EXPECT_TRUE(testing::has_temporary_next_to(path_));
  }
  EXPECT_FALSE(testing::has_temporary_next_to(path_));
  std::ifstream in(path_);
  std::string content;
  std::getline(in, content);
  EXPECT_EQ(content, "previous archive");
}

TEST_F(Archive, FinalFileAppearsOnlyOnFinalize) {
  ArchiveWriter writer(path_, make_header());
  writer.write_layer(make_layer("fc.weight", {8, 8}, 4, 4, true));
  writer.write_kept(make_kept<float>("fc.bias", "F32", {2}, {1.f, 2.f}));
  EXPECT_FALSE(fs::exists(path_));
  writer.finalize();
  EXPECT_TRUE(fs::exists(path_));
  EXPECT_FALSE(testing::has_temporary_next_to(path_));
  EXPECT_EQ(ArchiveReader::open(path_).layer_names(), std::vector<std::string>{"fc.weight"});
}

TEST_F(Archive, WriterRejectsInconsistentInput) {
  ArchiveWriter writer(path_, make_header());
  LayerRecord bad = make_layer("fc.weight", {8, 8}, 4, 4, true);
  bad.codes[3] = 4;
  EXPECT_THROW(writer.write_layer(bad), InputError);
  writer.write_layer(make_layer("fc.weight", {8, 8}, 4, 4, true));
  EXPECT_THROW(writer.write_layer(make_layer("fc.weight", {8, 8}, 4, 4, true)), InputError);
  EXPECT_THROW(writer.write_kept(make_kept<float>("b", "F32", {3}, {1.f, 2.f})), InputError);
  EXPECT_THROW(writer.write_kept(make_kept<float>("b", "F7", {2}, {1.f, 2.f})), InputError);
  writer.finalize();
  EXPECT_EQ(ArchiveReader::open(path_).layer_names().size(), 1u);
}

TEST_F(Archive, CheckpointsSaveAndLoadMatching) {
  LayerCheckpoints parts(path_);
  EXPECT_EQ(parts.dir(), path_ + ".parts");
  const LayerRecord layer = make_layer("enc/fc1.weight", {16, 16}, 4, 16, false);
  EXPECT_FALSE(parts.load_matching(layer.name, layer.source_digest, "settings-1").has_value());
  parts.save(layer);
  EXPECT_TRUE(fs::exists(parts.part_path(layer.name)));
  EXPECT_FALSE(testing::has_temporary_next_to(parts.part_path(layer.name)));
  const auto loaded = parts.load_matching(layer.name, layer.source_digest, "settings-1");
  ASSERT_TRUE(loaded.has_value());
  expect_same_layer(*loaded, layer);
  EXPECT_FALSE(parts.load_matching(layer.name, "other", "settings-1").has_value());
  EXPECT_FALSE(parts.load_matching(layer.name, layer.source_digest, "settings-2").has_value());
  EXPECT_FALSE(parts.load_matching("other.weight", layer.source_digest, "settings-1").has_value());

  // A resumed run assembles the archive from the parts.
  ArchiveWriter writer(path_, make_header());
  writer.write_layer(*loaded);
  writer.finalize();
  parts.remove_finished();
  EXPECT_FALSE(fs::exists(parts.dir()));
  expect_same_layer(ArchiveReader::open(path_).read_layer(layer.name), layer);
}

TEST_F(Archive, FinishedLayersSurviveKill9) {
  const LayerRecord a = make_layer("a.weight", {16, 16}, 4, 16, true, 1);
  const LayerRecord b = make_layer("b.weight", {16, 16}, 4, 16, true, 2);
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {  // a run killed after layer a, while b and the archive are being written
    try {
      LayerCheckpoints(path_).save(a);
      ArchiveWriter writer(path_, make_header());
      writer.write_layer(a);
      writer.write_layer(b);
      ::kill(::getpid(), SIGKILL);
    } catch (...) {
    }
    ::_exit(1);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << status;
  EXPECT_FALSE(fs::exists(path_));

  // The resumed run takes a from its checkpoint and redoes b.
  LayerCheckpoints parts(path_);
  const auto loaded = parts.load_matching(a.name, a.source_digest, a.settings_digest);
  ASSERT_TRUE(loaded.has_value());
  EXPECT_FALSE(parts.load_matching(b.name, b.source_digest, b.settings_digest).has_value());
  ArchiveWriter writer(path_, make_header());
  writer.write_layer(*loaded);
  writer.write_layer(b);
  writer.finalize();
  parts.remove_all();
  const ArchiveReader reader = ArchiveReader::open(path_);
  expect_same_layer(reader.read_layer(a.name), a);
  expect_same_layer(reader.read_layer(b.name), b);
}

TEST_F(Archive, DamagedCheckpointsAreIgnored) {
  LayerCheckpoints parts(path_);
  const LayerRecord layer = make_layer("fc.weight", {64, 64}, 4, 256, true);
  parts.save(layer);
  const std::string part = parts.part_path(layer.name);
  fs::resize_file(part, fs::file_size(part) / 2);  // truncated by a crash
  EXPECT_FALSE(parts.load_matching(layer.name, layer.source_digest, "settings-1").has_value());

  { std::ofstream(part, std::ios::trunc) << "garbage, not HDF5"; }
  EXPECT_FALSE(parts.load_matching(layer.name, layer.source_digest, "settings-1").has_value());

  parts.save(layer);  // replaces the damaged part
  {
    const H5Site site(part, false);
    H5File file = open_file(site, true);
    ASSERT_GE(H5Adelete_by_name(file.get(), "layers/fc.weight", "complete", H5P_DEFAULT), 0);
  }
  EXPECT_FALSE(parts.load_matching(layer.name, layer.source_digest, "settings-1").has_value());
}

}  // namespace
}  // namespace pgkm::io
