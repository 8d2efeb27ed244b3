// NcclCommunicator (launch/nccl_communicator.h), run by ctest as `mpiexec -n 1` (one GPU
// per rank). Every test is skipped (GTEST_SKIP, exit code 0) unless every rank sees a GPU.
//
// As in test_mpi_communicator.cpp, no failure may hang the job: a fatal failure or an
// exception aborts the whole job, and other failures are summed over the ranks at the end.
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <exception>
#include <memory>
#include <optional>
#include <vector>

#include "engine/errors.h"
#include "launch/mpi_communicator.h"
#include "launch/nccl_communicator.h"

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

// Gathers n codes (code i = 7 * i + 1) from uneven slices, copied or in place.
void check_allgather(Communicator& comm, int64_t n, bool in_place) {
  const ShardRange mine = shard_range(n, comm.rank(), comm.size());
  std::vector<uint32_t> all(static_cast<size_t>(n), 0xdeadbeef);
  std::vector<uint32_t> local;
  for (int64_t i = mine.begin; i < mine.end; ++i) {
    local.push_back(static_cast<uint32_t>(7 * i + 1));
    if (in_place) all[static_cast<size_t>(i)] = static_cast<uint32_t>(7 * i + 1);
  }
  const std::span<const uint32_t> source =
      in_place ? std::span<const uint32_t>(all).subspan(static_cast<size_t>(mine.begin),
                                                        static_cast<size_t>(mine.size()))
               : std::span<const uint32_t>(local);
  comm.allgather(source, all);
  for (int64_t i = 0; i < n; ++i) {
    EXPECT_EQ(all[static_cast<size_t>(i)], static_cast<uint32_t>(7 * i + 1))
        << "n " << n << ", element " << i << (in_place ? ", in place" : "");
  }
}

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

// Aborts the job on a fatal failure: the rest of the test, and its collectives, are
// skipped on this rank only, so the others would wait for it forever.
class AbortOnFatalFailure : public ::testing::EmptyTestEventListener {
 public:
  explicit AbortOnFatalFailure(int rank) : rank_(rank) {}
  void OnTestPartResult(const ::testing::TestPartResult& result) override {
    if (!result.fatally_failed()) return;
    std::fprintf(stderr, "rank %d: fatal failure at %s:%d: %s\n", rank_,
                 result.file_name() ? result.file_name() : "?", result.line_number(),
                 result.message());
    std::fflush(stderr);
    MpiSession::abort(1);
  }

 private:
  int rank_;
};

// Makes the NCCL communicator if every rank sees a GPU, runs every test on this rank, and
// returns how many ranks had failures.
int64_t run_tests(const MpiSession& session) {
  MpiCommunicator world(MPI_COMM_WORLD);
  const int devices = NcclCommunicator::visible_device_count();
  std::array<int64_t, 1> ranks_without_gpu{devices > 0 ? 0 : 1};
  world.allreduce_sum(ranks_without_gpu);
  std::optional<NcclCommunicator> nccl;
  if (ranks_without_gpu[0] == 0) {
    nccl.emplace(world, session.local_rank() % devices);
    g_nccl = &*nccl;
  } else if (session.world_rank() == 0) {
    std::printf("%lld of %d ranks see no CUDA device: skipping the NCCL tests\n",
                static_cast<long long>(ranks_without_gpu[0]), session.world_size());
  }
  ::testing::TestEventListeners& listeners = ::testing::UnitTest::GetInstance()->listeners();
  listeners.Append(new AbortOnFatalFailure(session.world_rank()));
  std::array<int64_t, 1> failed{RUN_ALL_TESTS() == 0 ? 0 : 1};
  g_nccl = nullptr;
  world.allreduce_sum(failed);
  return failed[0];
}

}  // namespace
}  // namespace pgkm

int main(int argc, char** argv) {
  int rank = -1;
  // Outlives the catch below, so the message is printed before the job is aborted.
  std::optional<pgkm::MpiSession> session;
  try {
    session.emplace(&argc, &argv);
    rank = session->world_rank();
    if (rank != 0) GTEST_FLAG_SET(brief, true);
    ::testing::InitGoogleTest(&argc, argv);
    // Exceptions leave the test and abort the job below, rather than desynchronize ranks.
    GTEST_FLAG_SET(catch_exceptions, false);
    const int64_t failed_ranks = pgkm::run_tests(*session);
    if (rank == 0 && failed_ranks > 0) {
      std::fprintf(stderr, "%lld of %d ranks had failures\n", static_cast<long long>(failed_ranks),
                   session->world_size());
    }
    return failed_ranks == 0 ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "rank %d: error: %s\n", rank, e.what());
    std::fflush(stderr);
    pgkm::MpiSession::abort(1);
  }
}
