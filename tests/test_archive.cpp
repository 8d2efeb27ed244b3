// The HDF5 model archive: round trips, atomic finalize, layer checkpoints and the
// reader's checks on malformed archives (each built here with the HDF5 C API).
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
#include "tests/temp_files.h"

namespace pgkm::io {
namespace {

namespace fs = std::filesystem;

ArchiveHeader make_header() {
  ArchiveHeader h;
  h.tool_version = "0.1.0";
  h.config_text = "n_centroids:\n  Linear: {key: in_features, value: {'*': 256}}\n";
  h.config_format = "fairseq-yaml";
  h.algorithm = "pg";
  h.seed = 0xfedcba9876543210ull;
  h.iterations = 15;
  h.settings_json = R"({"device": "cpu"})";
  h.source_files_json = R"({"model.safetensors": "sha256:00ff"})";
  h.created_utc = "2024-05-01T12:00:00Z";
  return h;
}

// A consistent layer of `shape` with random centroids and codes.
LayerRecord make_layer(const std::string& name, std::vector<int64_t> shape, int b, int64_t k,
                       bool f16, uint32_t seed = 1) {
  std::mt19937 gen(seed);
  LayerRecord l;
  l.name = name;
  l.shape = std::move(shape);
  l.source_dtype = DType::BF16;
  l.module_type = ModuleType::kLinear;
  l.settings.block_size = b;
  l.settings.kmeans.n_centroids = k;
  l.settings.kmeans.algorithm = Algorithm::kIpq;
  l.settings.centroid_dtype = f16 ? CentroidDtype::kF16 : CentroidDtype::kF32;
  l.stats.iterations_run = 12;
  l.stats.empty_clusters = 3;
  l.stats.initial_empty = 5;
  l.stats.objective = 123.456;
  l.stats.resolution_rounds = 7;
  l.stats.seconds_total = 0.25;
  l.stats.distinct_vectors = 99;
  l.stats.clustered_points = 98;
  l.stats.stopped_early = true;
  l.stats.per_iteration = {IterationStats{0, 1.5, 2, 1, 3, 0.125, 0.25, 0.5}};
  l.source_digest = "src-" + name;
  l.settings_digest = "settings-1";
  std::normal_distribution<float> value(0.f, 0.1f);
  l.centroids.resize(static_cast<size_t>(k * b));
  for (float& c : l.centroids)
    c = value(gen);
  int64_t numel = 1;
  for (int64_t d : l.shape)
    numel *= d;
  std::uniform_int_distribution<uint32_t> code(0, static_cast<uint32_t>(k - 1));
  l.counts.assign(static_cast<size_t>(k), 0);
  for (int64_t j = 0; j < numel / b; ++j) {
    l.codes.push_back(j == 0 ? static_cast<uint32_t>(k - 1) : code(gen));
    ++l.counts[l.codes.back()];
  }
  return l;
}

template <typename T>
KeptTensor make_kept(const std::string& name, const std::string& dtype, std::vector<int64_t> shape,
                     const std::vector<T>& values) {
  KeptTensor t{name, dtype, std::move(shape), std::vector<uint8_t>(values.size() * sizeof(T))};
  if (!values.empty()) std::memcpy(t.bytes.data(), values.data(), t.bytes.size());
  return t;
}

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

class Archive : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() /
           ("pgkm_archive_" + std::string(info->name()) + "_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    path_ = (dir_ / "model.pgkm.h5").string();
  }
  void TearDown() override { fs::remove_all(dir_); }

  fs::path dir_;
  std::string path_;
};

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
    if (version == 1) EXPECT_NO_THROW(ArchiveReader::open(path_).read_layer("enc.fc1.weight"));
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
