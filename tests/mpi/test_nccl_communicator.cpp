// NcclCommunicator (dist/nccl_communicator.h), run by ctest as `mpiexec -n 1` (one GPU
// per rank). Every test is skipped (GTEST_SKIP, exit code 0) unless every rank sees a GPU.
// No failure may hang the job (tests/mpi/mpi_test_main.h).
#include <gtest/gtest.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <exception>
#include <memory>
#include <optional>
#include <vector>

#include "core/errors.h"
#include "dist/mpi_communicator.h"
#include "dist/nccl_communicator.h"
#include "engine/cluster_state.h"
#include "engine/kmeans.h"
#include "kernels/cuda/cuda_backend.h"
#include "tests/mpi/mpi_test_main.h"
#include "tests/test_data.h"

namespace pgkm {
namespace {

// The communicator under test; null when some rank sees no GPU (every test skips).
NcclCommunicator* g_nccl = nullptr;

#define SKIP_WITHOUT_GPU() \
  if (g_nccl == nullptr) GTEST_SKIP() << "no CUDA device visible on every rank"

TEST(NcclCommunicator, RankAndSize) {
  SKIP_WITHOUT_GPU();
  MpiCommunicator world(MPI_COMM_WORLD);
  EXPECT_EQ(g_nccl->rank(), world.rank());
  EXPECT_EQ(g_nccl->size(), world.size());
}

TEST(NcclCommunicator, AllreduceSumInt64) {
  SKIP_WITHOUT_GPU();
  const int64_t r = g_nccl->rank();
  const int64_t p = g_nccl->size();
  std::vector<int64_t> data(10);
  for (size_t i = 0; i < data.size(); ++i) {
    const int64_t sign = i % 2 == 0 ? 1 : -1;
    data[i] = sign * ((r + 1) * (int64_t{1} << 40) + static_cast<int64_t>(i));
  }
  g_nccl->allreduce_sum(data);
  for (size_t i = 0; i < data.size(); ++i) {
    const int64_t sign = i % 2 == 0 ? 1 : -1;
    const int64_t expected = sign * (p * (p + 1) / 2 * (int64_t{1} << 40) + p * int64_t(i));
    EXPECT_EQ(data[i], expected) << "element " << i;
  }
  g_nccl->allreduce_sum(std::span<int64_t>());
}

TEST(NcclCommunicator, AllreduceSumUint64) {
  SKIP_WITHOUT_GPU();
  const uint64_t r = static_cast<uint64_t>(g_nccl->rank());
  const uint64_t p = static_cast<uint64_t>(g_nccl->size());
  std::vector<uint64_t> data(9);
  for (size_t i = 0; i < data.size(); ++i)
    data[i] = (uint64_t{1} << 61) + r * 1000 + i;
  g_nccl->allreduce_sum(data);
  for (size_t i = 0; i < data.size(); ++i) {
    const uint64_t expected = p * (uint64_t{1} << 61) + p * (p - 1) / 2 * 1000 + p * i;
    EXPECT_EQ(data[i], expected) << "element " << i;
  }
  g_nccl->allreduce_sum(std::span<uint64_t>());
}

using mpitest::check_allgather;

TEST(NcclCommunicator, AllgatherUnevenSlices) {
  SKIP_WITHOUT_GPU();
  for (int64_t n : {0, 1, 2, 3, 5, 10, 11, 1001, 100003}) {
    check_allgather(*g_nccl, n, false);
    check_allgather(*g_nccl, n, true);
  }
}

TEST(NcclCommunicator, Broadcast) {
  SKIP_WITHOUT_GPU();
  for (int root = 0; root < g_nccl->size(); ++root) {
    for (size_t size : {size_t{0}, size_t{1}, size_t{1000}, size_t{1} << 20}) {
      std::vector<std::byte> data(size);
      for (size_t i = 0; i < size; ++i) {
        data[i] = g_nccl->rank() == root ? static_cast<std::byte>((i * 131 + root * 7) & 0xff)
                                         : std::byte{0};
      }
      g_nccl->broadcast(data, root);
      for (size_t i = 0; i < size; ++i) {
        ASSERT_EQ(data[i], static_cast<std::byte>((i * 131 + root * 7) & 0xff))
            << "root " << root << ", size " << size << ", byte " << i;
      }
    }
  }
  g_nccl->barrier();
}

// A layer shared by the NCCL group on the CUDA backend: the sums and counts are reduced on
// the device, on the backend's stream (engine/cluster_state.h device_reduction), and the
// result is bit for bit the CPU backend's on one rank.
TEST(NcclCommunicator, ShardedKMeansOnTheCudaBackendMatchesTheCpu) {
  SKIP_WITHOUT_GPU();
  const std::unique_ptr<Backend> gpu = make_cuda_backend(g_nccl->device());
  ASSERT_NE(device_reduction(*gpu, *g_nccl), nullptr) << "the device path is not taken";
  const std::unique_ptr<Backend> cpu = make_cpu_backend();
  const int dim = 8;
  const std::vector<float> v = testdata::normal(6000, dim, 0.02f, 11);
  for (const Algorithm algorithm : {Algorithm::kIpq, Algorithm::kPg}) {
    KMeansParams p;
    p.algorithm = algorithm;
    p.n_centroids = 256;
    p.iterations = 6;
    p.seed = 5;
    const KMeansResult on_gpu =
        run_kmeans({*gpu, *g_nccl, SearchMode::kBrute}, p, "layers.0.fc1", v, dim);
    const KMeansResult on_cpu = run_kmeans({*cpu}, p, "layers.0.fc1", v, dim);
    EXPECT_EQ(on_gpu.codes, on_cpu.codes) << algorithm_name(algorithm);
    EXPECT_EQ(on_gpu.counts, on_cpu.counts) << algorithm_name(algorithm);
    ASSERT_EQ(on_gpu.centroids.size(), on_cpu.centroids.size());
    EXPECT_EQ(std::memcmp(on_gpu.centroids.data(), on_cpu.centroids.data(),
                          on_cpu.centroids.size() * sizeof(float)),
              0)
        << algorithm_name(algorithm) << ": centroids differ in their bits";
    EXPECT_EQ(on_gpu.objective, on_cpu.objective) << algorithm_name(algorithm);
  }
}

// Makes the NCCL communicator if every rank sees a GPU and runs every test on this rank.
int run_all(const MpiSession& session) {
  MpiCommunicator world(MPI_COMM_WORLD);
  const int devices = cuda_device_status().count;
  std::array<int64_t, 1> ranks_without_gpu{devices > 0 ? 0 : 1};
  world.allreduce_sum(ranks_without_gpu);
  std::optional<NcclCommunicator> nccl;
  if (ranks_without_gpu[0] == 0) {
    nccl.emplace(world, session.local_rank() % devices, std::chrono::seconds(60));
    g_nccl = &*nccl;
  } else if (session.world_rank() == 0) {
    std::printf("%lld of %d ranks see no CUDA device: skipping the NCCL tests\n",
                static_cast<long long>(ranks_without_gpu[0]), session.world_size());
  }
  const int result = RUN_ALL_TESTS();
  g_nccl = nullptr;
  return result;
}

}  // namespace
}  // namespace pgkm

int main(int argc, char** argv) {
  return pgkm::mpitest::mpi_test_main(argc, argv, pgkm::run_all);
}
