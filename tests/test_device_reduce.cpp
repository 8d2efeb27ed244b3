// Which path a sharded layer's sums take (engine/cluster_state.h device_reduction): with
// the CUDA backend and a group that reduces device memory on its device (NCCL), the
// assignment stays on the device, the group adds up the resident sums and counts on the
// backend's stream, and one download brings back the totals and this rank's codes; every
// other pairing (MPI, the CPU backend, another device) keeps the host path. Runs without
// a GPU: the CUDA backend drives a fake device half (tests/cuda_fake_engine.h) and the
// group is a fake that records what it is asked to do.
#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "core/errors.h"
#include "engine/cluster_state.h"
#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/device_engine.h"
#include "tests/cuda_fake_engine.h"

namespace pgkm {
namespace {

using testing_cuda::FakeEngine;
using testing_cuda::kFakeCounts;
using testing_cuda::kFakeStream;
using testing_cuda::kFakeSums;

std::string address(const void* p) {
  return str_cat(reinterpret_cast<uintptr_t>(p));
}

// Rank 0 of two; reduces device memory on `device_` when asked to (as NCCL would).
class RecordingGroup final : public Communicator {
 public:
  RecordingGroup(std::vector<std::string>& log, bool on_device, int device)
      : log_(log), on_device_(on_device), device_(device) {}
  int rank() const override { return 0; }
  int size() const override { return 2; }
  void allreduce_sum(std::span<int64_t> data) override {
    log_.push_back(str_cat("host allreduce int64 ", data.size()));
  }
  void allreduce_sum(std::span<uint64_t> data) override {
    log_.push_back(str_cat("host allreduce uint64 ", data.size()));
  }
  void allgather(std::span<const uint32_t> local, std::span<uint32_t> all) override {
    log_.push_back(str_cat("allgather ", local.size(), " of ", all.size()));
    std::copy(local.begin(), local.end(), all.begin());
  }
  void broadcast(std::span<std::byte>, int) override { log_.push_back("broadcast"); }
  void barrier() override { log_.push_back("barrier"); }
  bool reduces_on_device(int device) const override { return on_device_ && device == device_; }
  void allreduce_sum_device(std::span<const DeviceIntegers> buffers, DeviceStream stream) override {
    std::string entry = str_cat("device allreduce on stream ", address(stream.stream), " device ",
                                stream.device, ":");
    for (const DeviceIntegers& b : buffers) {
      entry += str_cat(" ", address(b.data), "x", b.count,
                       b.type == DeviceIntegers::Type::kInt64 ? " int64" : " uint64");
    }
    log_.push_back(entry);
  }

 private:
  std::vector<std::string>& log_;
  bool on_device_;
  int device_;
};

struct Layer {
  PointSet points;
  FixedPoint fp = FixedPoint::for_data(1.0, 10);
  Layer() {
    points.dim = 2;
    for (int i = 0; i < 10; ++i) {
      points.x.push_back(0.1f * static_cast<float>(i));
      points.x.push_back(-0.05f * static_cast<float>(i));
      points.weight.push_back(1);
    }
  }
};

// One reassign of this rank's half of 10 points into k = 3 clusters; returns the log of
// the backend's device half and the group's calls, in the order they happened.
std::vector<std::string> one_reassign(Backend& backend, RecordingGroup& group,
                                      std::vector<std::string>& log, bool expect_device) {
  Layer layer;
  const ShardRange shard = shard_range(layer.points.size(), group.rank(), group.size());
  auto resident = backend.upload(std::span(layer.points.x).subspan(0, shard.size() * 2),
                                 std::span(layer.points.weight).subspan(0, shard.size()), 2);
  ClusterState state(backend, *resident, layer.points, layer.fp, 3, group, shard,
                     SearchMode::kBrute);
  EXPECT_EQ(state.device_reduce != nullptr, expect_device);
  log.clear();
  state.reassign();
  return log;
}

TEST(DeviceReduce, CudaBackendWithADeviceGroupReducesOnTheBackendsStream) {
  std::vector<std::string> log;
  auto backend = cuda::make_cuda_backend_on(std::make_unique<FakeEngine>(log));
  RecordingGroup group(log, true, 0);
  const std::vector<std::string> expected = {
      "set_centroids",
      "assign+sums",  // codes, sums and counts stay on the device; no distances
      str_cat("device allreduce on stream ", address(kFakeStream),
              " device 0: ", address(kFakeSums), "x6 int64 ", address(kFakeCounts), "x3 uint64"),
      "download",  // the reduced totals and this rank's codes, once
      "allgather 5 of 10",
  };
  EXPECT_EQ(one_reassign(*backend, group, log, true), expected);
}

TEST(DeviceReduce, HostGroupKeepsTheHostPath) {
  std::vector<std::string> log;
  auto backend = cuda::make_cuda_backend_on(std::make_unique<FakeEngine>(log));
  RecordingGroup group(log, false, 0);
  const std::vector<std::string> expected = {
      "set_centroids",          "assign+dist+sums",        "download",
      "host allreduce int64 6", "host allreduce uint64 3", "allgather 5 of 10",
  };
  EXPECT_EQ(one_reassign(*backend, group, log, false), expected);
}

TEST(DeviceReduce, GroupOnAnotherDeviceKeepsTheHostPath) {
  std::vector<std::string> log;
  auto backend = cuda::make_cuda_backend_on(std::make_unique<FakeEngine>(log));
  RecordingGroup group(log, true, 1);  // the backend's stream is on device 0
  const auto calls = one_reassign(*backend, group, log, false);
  EXPECT_TRUE(std::none_of(calls.begin(), calls.end(),
                           [](const std::string& c) { return c.starts_with("device allreduce"); }));
  EXPECT_NE(std::find(calls.begin(), calls.end(), "host allreduce int64 6"), calls.end());
}

TEST(DeviceReduce, CpuBackendKeepsTheHostPath) {
  std::vector<std::string> log;
  auto backend = make_cpu_backend({.threads = 1});
  RecordingGroup group(log, true, 0);
  const std::vector<std::string> expected = {
      "host allreduce int64 6",
      "host allreduce uint64 3",
      "allgather 5 of 10",
  };
  EXPECT_EQ(one_reassign(*backend, group, log, false), expected);
}

TEST(DeviceReduce, OneRankGroupNeverReducesOnDevice) {
  std::vector<std::string> log;
  auto backend = cuda::make_cuda_backend_on(std::make_unique<FakeEngine>(log));
  EXPECT_EQ(device_reduction(*backend, single_process_group()), nullptr);
}

}  // namespace
}  // namespace pgkm
