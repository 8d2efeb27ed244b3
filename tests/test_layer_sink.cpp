// pipeline/layer_sink.h: rank 0 writes, checkpoints and reports every finished layer.
#include "pipeline/layer_sink.h"

#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "core/digest.h"
#include "core/errors.h"

namespace pgkm {
namespace {

namespace fs = std::filesystem;

LayerRecord small_layer(const std::string& name, uint32_t salt) {
  LayerRecord l;
  l.name = name;
  l.shape = {4, 8};
  l.settings.block_size = 4;
  l.settings.kmeans.n_centroids = 2;
  l.settings.centroid_dtype = CentroidDtype::kF32;
  l.settings_digest = settings_digest(l.settings);
  l.source_digest = "src-" + name;
  l.stats.objective = 1.5 + salt;
  l.stats.iterations_run = 3;
  l.centroids = {0.f, 1.f, 2.f, 3.f, 4.f, 5.f, 6.f, static_cast<float>(salt)};
  l.codes = {0, 1, 1, 0, 1, 0, 0, 1};
  l.counts = {4, 4};
  return l;
}

io::ReportLayer planned_row(const std::string& name) {
  io::ReportLayer row;
  row.record.name = name;
  row.sizes.tracker_original_mib = 1;
  row.sizes.tracker_compressed_mib = 0.25;
  return row;
}

struct RecordingObserver : QuantizeObserver {
  std::vector<std::string> written;
  std::vector<size_t> indices;
  void on_layer_written(size_t index, size_t total, const io::ReportLayer& row) override {
    EXPECT_EQ(total, 3u);
    indices.push_back(index);
    written.push_back(row.record.name);
  }
};

class LayerSinkTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("pgkm-sink-" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    out_ = (dir_ / "out.h5").string();
  }
  void TearDown() override { fs::remove_all(dir_); }

  fs::path dir_;
  std::string out_;
};

TEST_F(LayerSinkTest, WritesCheckpointsAndReportsLayersInArrivalOrder) {
  std::vector<io::ReportLayer> rows = {planned_row("a.weight"), planned_row("b.weight"),
                                       planned_row("c.weight")};
  io::ArchiveHeader header;
  header.created_utc = "2026-01-01T00:00:00Z";
  io::ArchiveWriter writer(out_, header);
  io::LayerCheckpoints checkpoints(out_);
  RecordingObserver observer;
  LayerSink sink(rows, writer, checkpoints, observer);

  sink.accept(small_layer("c.weight", 3), false);
  sink.accept(small_layer("a.weight", 1), true);  // reused from a checkpoint
  EXPECT_EQ(sink.finished(), 2u);
  sink.accept(small_layer("b.weight", 2), false);
  writer.finalize();

  EXPECT_EQ(observer.written, (std::vector<std::string>{"c.weight", "a.weight", "b.weight"}));
  EXPECT_EQ(observer.indices, (std::vector<size_t>{0, 1, 2}));
  // Rows keep plan order and gain each layer's statistics; the data is not kept.
  EXPECT_TRUE(rows[0].clustered && rows[1].clustered && rows[2].clustered);
  EXPECT_EQ(rows[0].resumed, true);
  EXPECT_EQ(rows[2].resumed, false);
  EXPECT_EQ(rows[1].record.stats.objective, 3.5);
  EXPECT_TRUE(rows[1].record.codes.empty());
  EXPECT_EQ(rows[1].sizes.tracker_compressed_mib, 0.25);
  // The archive has all three with their data, in arrival order.
  const io::ArchiveReader archive = io::ArchiveReader::open(out_);
  EXPECT_EQ(archive.layer_names(), (std::vector<std::string>{"c.weight", "a.weight", "b.weight"}));
  EXPECT_EQ(archive.read_layer("c.weight").centroids.back(), 3.f);
  // Only computed layers are checkpointed.
  EXPECT_TRUE(fs::exists(checkpoints.part_path("c.weight")));
  EXPECT_TRUE(fs::exists(checkpoints.part_path("b.weight")));
  EXPECT_FALSE(fs::exists(checkpoints.part_path("a.weight")));
}

TEST_F(LayerSinkTest, ReusesACheckpointOnlyWhenBothDigestsMatch) {
  io::LayerCheckpoints checkpoints(out_);
  const LayerRecord saved = small_layer("a.weight", 1);
  checkpoints.save(saved);
  PlannedLayer planned;
  planned.plan.tensor = "a.weight";
  planned.settings = saved.settings;
  planned.settings_digest = saved.settings_digest;
  const auto reused = reusable_checkpoint(checkpoints, planned, saved.source_digest);
  ASSERT_TRUE(reused.has_value());
  EXPECT_EQ(reused->codes, saved.codes);
  EXPECT_FALSE(reusable_checkpoint(checkpoints, planned, "another source").has_value());
  planned.settings.kmeans.seed = 9;
  planned.settings_digest = settings_digest(planned.settings);
  EXPECT_FALSE(reusable_checkpoint(checkpoints, planned, saved.source_digest).has_value());
  planned.plan.tensor = "b.weight";
  EXPECT_FALSE(reusable_checkpoint(checkpoints, planned, saved.source_digest).has_value());
}

TEST_F(LayerSinkTest, ACorruptCheckpointIsRedoneWithAWarningNamingLayerAndReason) {
  io::LayerCheckpoints checkpoints(out_);
  const LayerRecord saved = small_layer("a.weight", 1);
  checkpoints.save(saved);
  std::ofstream(checkpoints.part_path("a.weight"), std::ios::trunc) << "not HDF5";
  PlannedLayer planned;
  planned.plan.tensor = "a.weight";
  planned.settings = saved.settings;
  planned.settings_digest = saved.settings_digest;
  std::string warning;
  EXPECT_FALSE(reusable_checkpoint(checkpoints, planned, saved.source_digest, &warning));
  EXPECT_NE(warning.find("ignoring the checkpoint of layer 'a.weight' (it will be redone): "),
            std::string::npos)
      << warning;
  EXPECT_NE(warning.find(checkpoints.part_path("a.weight")), std::string::npos) << warning;
  // A checkpoint that is simply absent or for other settings says nothing.
  warning.clear();
  planned.plan.tensor = "b.weight";
  EXPECT_FALSE(reusable_checkpoint(checkpoints, planned, saved.source_digest, &warning));
  EXPECT_EQ(warning, "");
}

TEST(SettingsDigest, FrozenTextAndEverySettingCounts) {
  // The v1 text of the defaults, pinned: checkpoints of earlier pgkm versions must match.
  LayerSettings s;
  s.block_size = 4;
  s.kmeans.n_centroids = 256;
  const std::string base = settings_digest(s);
  const std::string v1 =
      "pgkm-layer-settings-v1|pg|b=4|k=256|iters=15|seed=0|ipq=1e-06,100|pg=15|"
      "dwc=0.8,2,0.25,0,200|centroids=f16";
  EXPECT_EQ(base, digest_hex(digest64(std::as_bytes(std::span(v1.data(), v1.size())))));
  std::vector<LayerSettings> variants(8, s);
  variants[0].kmeans.algorithm = Algorithm::kIpq;
  variants[1].block_size = 8;
  variants[2].kmeans.n_centroids = 512;
  variants[3].kmeans.iterations = 5;
  variants[4].kmeans.seed = 1;
  variants[5].kmeans.dwc.max_epsilon_updates = 3;
  variants[6].centroid_dtype = CentroidDtype::kF32;
  variants[7].kmeans.ipq.eps = 2e-6f;
  for (const LayerSettings& v : variants)
    EXPECT_NE(settings_digest(v), base);
}

}  // namespace
}  // namespace pgkm
