// What every MPI GoogleTest executable here shares: a main() under which no failure can
// hang the job, and checks that hold for any Communicator.
//
// A fatal failure (ASSERT_*, which skips the rest of a test and so the collectives in it)
// or an exception aborts the whole job at once; other failures are summed over the ranks
// at the end, so rank 0's exit code reports them.
#pragma once

#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <exception>
#include <functional>
#include <optional>
#include <vector>

#include "dist/mpi_communicator.h"
#include "engine/communicator.h"

namespace pgkm::mpitest {

// Gathers n codes (code i = 7 * i + 1) from uneven slices, copied or in place.
inline void check_allgather(Communicator& comm, int64_t n, bool in_place) {
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

// The body of main(): starts MPI, calls run_all(session) (which sets up what its tests
// need and returns RUN_ALL_TESTS()), and exits non-zero if any rank had a failure.
inline int mpi_test_main(int argc, char** argv,
                         const std::function<int(const MpiSession&)>& run_all) {
  int rank = -1;
  // Outlives the catch below, so the message is printed before the job is aborted.
  std::optional<MpiSession> session;
  try {
    session.emplace(&argc, &argv);
    rank = session->world_rank();
    // One full report, rank 0's; the other ranks print only their failures.
    if (rank != 0) GTEST_FLAG_SET(brief, true);
    ::testing::InitGoogleTest(&argc, argv);
    // Exceptions leave the test and abort the job below, rather than desynchronize ranks.
    GTEST_FLAG_SET(catch_exceptions, false);
    ::testing::UnitTest::GetInstance()->listeners().Append(new AbortOnFatalFailure(rank));
    std::array<int64_t, 1> failed{run_all(*session) == 0 ? 0 : 1};
    MpiCommunicator(MPI_COMM_WORLD).allreduce_sum(failed);
    if (rank == 0 && failed[0] > 0) {
      std::fprintf(stderr, "%lld of %d ranks had failures\n", static_cast<long long>(failed[0]),
                   session->world_size());
    }
    return failed[0] == 0 ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "rank %d: error: %s\n", rank, e.what());
    std::fflush(stderr);
    MpiSession::abort(1);
  }
}

}  // namespace pgkm::mpitest
