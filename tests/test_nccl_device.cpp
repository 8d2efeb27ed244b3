// NCCL on one rank, without MPI: an NcclCommunicator bootstrapped from the one-process
// group (the unique id needs no broadcast), so a bare GPU machine can check the device
// reduction path and the deadline (bench/gpu/check.sh step 3b builds this file against
// minitest). Every test skips without a CUDA device. Never run on a GPU by the work that
// wrote it.
//
//   - a layer on the CUDA backend whose group is the NCCL communicator reduces its sums
//     and counts on the device (engine/cluster_state.h device_reduction) and gives the
//     CPU backend's result bit for bit, for every algorithm;
//   - a wait that cannot finish in time (a host function holding the backend's stream
//     stands for a peer that never arrives) ends at the deadline with a SystemError,
//     and the aborted communicator refuses further collectives.
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "core/errors.h"
#include "dist/nccl_communicator.h"
#include "engine/cluster_state.h"
#include "engine/context.h"
#include "engine/kmeans.h"
#include "kernels/cuda/cuda_backend.h"
#include "tests/test_data.h"

namespace pgkm {
namespace {

#define SKIP_WITHOUT_GPU()                   \
  if (cuda_device_status().count == 0)       \
  GTEST_SKIP() << "no CUDA device visible: " \
               << (cuda_device_status().error.empty() ? "none" : cuda_device_status().error)

TEST(NcclDevice, HostCollectivesOnOneRank) {
  SKIP_WITHOUT_GPU();
  NcclCommunicator nccl(single_process_group(), 0, std::chrono::seconds(60));
  EXPECT_EQ(nccl.rank(), 0);
  EXPECT_EQ(nccl.size(), 1);
  std::vector<int64_t> sums = {-3, 0, int64_t{1} << 62};
  nccl.allreduce_sum(sums);
  EXPECT_TRUE(sums == (std::vector<int64_t>{-3, 0, int64_t{1} << 62}));
  std::vector<uint32_t> codes = {7, 8, 9, 10, 11};
  std::vector<uint32_t> all(codes.size());
  nccl.allgather(codes, all);
  EXPECT_TRUE(all == codes);
  nccl.barrier();
}

TEST(NcclDevice, ShardedLayerReducesOnTheDeviceAndMatchesTheCpu) {
  SKIP_WITHOUT_GPU();
  NcclCommunicator nccl(single_process_group(), 0, std::chrono::seconds(60));
  const std::unique_ptr<Backend> gpu = make_cuda_backend(0);
  ASSERT_TRUE(device_reduction(*gpu, nccl) != nullptr) << "the device path is not taken";
  const std::unique_ptr<Backend> cpu = make_cpu_backend();
  for (const int dim : {4, 8}) {
    const std::vector<float> v = testdata::normal(8000, dim, 0.02f, 7 + dim);
    for (const Algorithm algorithm : {Algorithm::kIpq, Algorithm::kPgBase, Algorithm::kPg}) {
      KMeansParams p;
      p.algorithm = algorithm;
      p.n_centroids = 256;
      p.iterations = 5;
      p.seed = 3;
      const KMeansResult on_gpu =
          run_kmeans({*gpu, nccl, SearchMode::kBrute}, p, "layers.1.fc2", v, dim);
      const KMeansResult on_cpu = run_kmeans({*cpu}, p, "layers.1.fc2", v, dim);
      const std::string what = str_cat(algorithm_name(algorithm), " b=", dim);
      EXPECT_TRUE(on_gpu.codes == on_cpu.codes) << what << ": codes differ";
      EXPECT_TRUE(on_gpu.counts == on_cpu.counts) << what << ": counts differ";
      ASSERT_EQ(on_gpu.centroids.size(), on_cpu.centroids.size());
      EXPECT_EQ(std::memcmp(on_gpu.centroids.data(), on_cpu.centroids.data(),
                            on_cpu.centroids.size() * sizeof(float)),
                0)
          << what << ": centroids differ in their bits";
      EXPECT_EQ(on_gpu.objective, on_cpu.objective) << what;
    }
  }
}

void hold_stream(void*) {
  std::this_thread::sleep_for(std::chrono::seconds(3));
}

// Last in the file: the aborted communicator's queued work runs once the stream is free.
TEST(NcclDevice, AWaitPastTheDeadlineAbortsAndThrows) {
  SKIP_WITHOUT_GPU();
  NcclCommunicator nccl(single_process_group(), 0, std::chrono::milliseconds(500));
  const std::unique_ptr<Backend> gpu = make_cuda_backend(0);
  auto* cuda = dynamic_cast<CudaBackend*>(gpu.get());
  ASSERT_TRUE(cuda != nullptr);
  const CudaStreamHandle stream = cuda->stream();
  void* sums = nullptr;
  ASSERT_EQ(cudaMalloc(&sums, 64 * sizeof(int64_t)), cudaSuccess);
  ASSERT_EQ(cudaMemset(sums, 0, 64 * sizeof(int64_t)), cudaSuccess);
  ASSERT_EQ(cudaLaunchHostFunc(static_cast<cudaStream_t>(stream.stream), hold_stream, nullptr),
            cudaSuccess);
  const DeviceIntegers buffer{sums, 64, DeviceIntegers::Type::kInt64};
  const auto start = std::chrono::steady_clock::now();
  std::string error;
  try {
    nccl.allreduce_sum_device(std::span(&buffer, 1), {stream.stream, stream.device});
  } catch (const SystemError& e) {
    error = e.what();
  }
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_NE(error.find("did not finish within 0.5 s"), std::string::npos) << "error: " << error;
  EXPECT_GE(took, std::chrono::milliseconds(500));
  // The host function holds the stream for 3 s; ncclCommAbort may wait for it, but
  // nothing may wait much longer.
  EXPECT_LT(took, std::chrono::seconds(10)) << "the wait outlived its deadline";
  std::printf("the expired wait threw after %.3f s\n", std::chrono::duration<double>(took).count());
  bool refused = false;
  try {
    nccl.barrier();
  } catch (const SystemError&) {
    refused = true;
  }
  EXPECT_TRUE(refused) << "the aborted communicator ran another collective";
  // Let the held stream drain before its memory goes (not judged: NCCL's queued work
  // after an abort is its own business).
  const cudaError_t drained = cudaStreamSynchronize(static_cast<cudaStream_t>(stream.stream));
  std::printf("after the abort, the stream drained with: %s\n", cudaGetErrorString(drained));
  cudaFree(sums);
}

}  // namespace
}  // namespace pgkm
