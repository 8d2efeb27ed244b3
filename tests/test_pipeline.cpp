// pipeline/quantize_model.h called as a library, in process: the same code the pgkm
// command runs, with an observer instead of a terminal.
#include "pipeline/quantize_model.h"

#include <gtest/gtest.h>

#include <chrono>

#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "core/errors.h"
#include "io/archive.h"
#include "io/safetensors.h"
#include "pipeline/plan.h"
#include "pipeline/resources.h"
#include "tests/run_test_util.h"

namespace pgkm {
namespace {

namespace fs = std::filesystem;

struct EventLog : QuantizeObserver {
  std::vector<std::string> events;
  void on_warning(const std::string& m) override { events.push_back("warning " + m); }
  void on_start(const ModelPlan& plan, bool whole_job) override {
    events.push_back("start " + std::to_string(plan.layers.size()) + (whole_job ? " whole" : ""));
  }
  void on_layer_start(const PlannedLayer& l) override {
    events.push_back("begin " + l.plan.tensor);
  }
  void on_iteration(const PlannedLayer&, const IterationStats& s) override {
    events.push_back("iteration " + std::to_string(s.iteration));
  }
  void on_layer_written(size_t index, size_t total, const io::ReportLayer& row) override {
    events.push_back("written " + std::to_string(index) + "/" + std::to_string(total) + " " +
                     row.record.name);
  }
};

class Pipeline : public SmallRunTest {
 protected:
  void SetUp() override {
    SmallRunTest::SetUp();
    std::mt19937 gen(3);
    std::normal_distribution<float> normal(0.f, 0.02f);
    for (auto* w : {&fc1_, &fc2_, &bias_}) {
      for (float& v : *w)
        v = normal(gen);
    }
    write_run({{"layers.0.fc1.weight", "F32", {32, 16}, std::as_bytes(std::span(fc1_))},
               {"layers.0.fc2.weight", "F32", {16, 32}, std::as_bytes(std::span(fc2_))},
               {"layers.0.fc1.bias", "F32", {32}, std::as_bytes(std::span(bias_))}},
              "pgkm: 1\ndefaults:\n  block_size: 4\n  n_centroids: 8\n"
              "rules:\n  - match: 'layers\\.0\\.fc.\\.weight'\n");
    params_.defaults.kmeans.iterations = 2;
  }

  std::vector<float> fc1_ = std::vector<float>(32 * 16);
  std::vector<float> fc2_ = std::vector<float>(16 * 32);
  std::vector<float> bias_ = std::vector<float>(32);
};

TEST_F(Pipeline, RunsAsALibraryAndReportsEveryEvent) {
  const auto world = make_single_process_world();
  EventLog log;
  const RunSummary summary = quantize_model(params_, *world, log);
  EXPECT_EQ(log.events,
            (std::vector<std::string>{"start 2 whole", "begin layers.0.fc1.weight", "iteration 0",
                                      "iteration 1", "written 0/2 layers.0.fc1.weight",
                                      "begin layers.0.fc2.weight", "iteration 0", "iteration 1",
                                      "written 1/2 layers.0.fc2.weight"}));
  EXPECT_FALSE(summary.dry_run);
  EXPECT_EQ(summary.rows.size(), 2u);
  EXPECT_EQ(summary.kept, 1u);
  EXPECT_TRUE(summary.totals.seconds.has_value());
  EXPECT_EQ(summary.backend.rfind("cpu", 0), 0u);
  const io::ArchiveReader archive = io::ArchiveReader::open(params_.out);
  const LayerRecord fc1 = archive.read_layer("layers.0.fc1.weight");
  EXPECT_EQ(fc1.settings.block_size, 4);
  EXPECT_EQ(fc1.settings.kmeans.n_centroids, 8);
  EXPECT_EQ(fc1.module_type, ModuleType::kLinear);
  EXPECT_EQ(fc1.codes.size(), 32u * 16 / 4);
  EXPECT_EQ(fc1.settings_digest, summary.rows[0].record.settings_digest);
  EXPECT_EQ(archive.kept_names(), std::vector<std::string>{"layers.0.fc1.bias"});
  EXPECT_FALSE(fs::exists(path("out.h5.parts")));
}

TEST_F(Pipeline, DryRunReadsNoDataAndWritesNothing) {
  params_.dry_run = true;
  params_.out.clear();
  fc1_[5] = std::numeric_limits<float>::quiet_NaN();  // only reading data would notice
  const auto world = make_single_process_world();
  EventLog log;
  const RunSummary summary = quantize_model(params_, *world, log);
  EXPECT_TRUE(log.events.empty());
  EXPECT_TRUE(summary.dry_run);
  ASSERT_EQ(summary.rows.size(), 2u);
  EXPECT_FALSE(summary.rows[0].clustered);
  EXPECT_GT(summary.totals.ratio(), 1.0);
  EXPECT_EQ(std::distance(fs::directory_iterator(dir_), fs::directory_iterator{}), 2);
}

TEST_F(Pipeline, BadParamsAreInputErrorsNamingTheOption) {
  const auto world = make_single_process_world();
  EventLog log;
  params_.out.clear();
  EXPECT_THROW(quantize_model(params_, *world, log), InputError);
  params_.out = path("out.h5");
  params_.shard_threshold = std::numeric_limits<double>::quiet_NaN();
  try {
    quantize_model(params_, *world, log);
    FAIL() << "no error";
  } catch (const InputError& e) {
    EXPECT_EQ(e.context(), "--shard-threshold");
  }
}

TEST(ThreadsPerRank, SharesTheNodeUnlessTold) {
  EXPECT_EQ(threads_per_rank(3, 4, 16, false), 3);  // asked for
  EXPECT_EQ(threads_per_rank(0, 1, 16, false), 0);  // alone: OpenMP's default
  EXPECT_EQ(threads_per_rank(0, 4, 16, false), 4);  // four ranks share sixteen cores
  EXPECT_EQ(threads_per_rank(0, 4, 2, false), 1);   // never zero
  EXPECT_EQ(threads_per_rank(0, 4, 16, true), 0);   // OMP_NUM_THREADS decides
}

TEST(DeviceChoice, CpuNeverAsksForCudaAndNamesRoundTrip) {
  const auto world = make_single_process_world();
  EXPECT_EQ(make_backend(Device::kCpu, *world, 1)->name().rfind("cpu", 0), 0u);
  for (Device d : {Device::kCpu, Device::kCuda, Device::kAuto})
    EXPECT_EQ(parse_device(device_name(d)), d);
  EXPECT_FALSE(parse_device("tpu").has_value());
}

// NCCL for shared layers only where each rank has a GPU of its own; MPI otherwise.
TEST(SharedLayerComm, NcclOnlyWhenEveryRankHasItsOwnGpu) {
  // (device, world size, ranks on this node, GPUs visible, NCCL built) -> NCCL?
  EXPECT_TRUE(choose_shared_layer_comm(Device::kCuda, 8, 4, 4, true).nccl);
  EXPECT_TRUE(choose_shared_layer_comm(Device::kAuto, 8, 4, 8, true).nccl);
  EXPECT_TRUE(choose_shared_layer_comm(Device::kCuda, 2, 1, 1, true).nccl);  // one per node
  // Five ranks on four GPUs: local_rank % gpus would put two on one GPU, which NCCL refuses.
  const SharedLayerComm crowded = choose_shared_layer_comm(Device::kCuda, 5, 5, 4, true);
  EXPECT_FALSE(crowded.nccl);
  EXPECT_NE(crowded.reason.find("5 ranks share this node's 4 GPU(s)"), std::string::npos)
      << crowded.reason;
  EXPECT_FALSE(choose_shared_layer_comm(Device::kCpu, 8, 4, 4, true).nccl);
  EXPECT_FALSE(choose_shared_layer_comm(Device::kAuto, 8, 4, 0, true).nccl);   // CPU backend
  EXPECT_FALSE(choose_shared_layer_comm(Device::kCuda, 8, 4, 4, false).nccl);  // not built
  EXPECT_FALSE(choose_shared_layer_comm(Device::kCuda, 1, 1, 1, true).nccl);   // nothing shared
  for (const SharedLayerComm& c : {choose_shared_layer_comm(Device::kCpu, 8, 4, 4, true),
                                   choose_shared_layer_comm(Device::kCuda, 8, 4, 4, false),
                                   choose_shared_layer_comm(Device::kAuto, 8, 4, 0, true)}) {
    EXPECT_EQ(c.reason.rfind("MPI: ", 0), 0u) << c.reason;
  }
  EXPECT_EQ(choose_shared_layer_comm(Device::kCuda, 8, 4, 4, true).reason.rfind("NCCL: ", 0), 0u);
}

TEST(SharedLayerComm, OneRankUsesItsOwnGroupAndSaysWhy) {
  const auto world = make_single_process_world();
  const auto backend = make_backend(Device::kCpu, *world, 1);
  const SharedLayerGroup shared =
      make_shared_layer_group(Device::kCpu, *world, *backend, std::chrono::seconds(300));
  EXPECT_EQ(shared.nccl, nullptr);
  EXPECT_EQ(shared.group, &world->everyone());
  EXPECT_NE(shared.description.find("one rank"), std::string::npos) << shared.description;
}

TEST(SharedLayerComm, TimeoutMustBePositive) {
  QuantizeParams p;
  p.out = "x.h5";
  validate(p);
  p.comm_timeout = std::chrono::seconds(0);
  try {
    validate(p);
    FAIL() << "no error";
  } catch (const InputError& e) {
    EXPECT_EQ(e.context(), "--comm-timeout");
  }
}

}  // namespace
}  // namespace pgkm
