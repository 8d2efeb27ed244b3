// MpiCommunicator and MpiSession (launch/mpi_communicator.h), run by ctest as
// `mpiexec -n N` for N = 1..4. Every rank runs every test.
//
// No failure may hang the job: a fatal failure (ASSERT_*, which skips the rest of a test
// and so the collectives in it) or an exception aborts the whole job at once; other
// failures are summed over the ranks at the end, so rank 0's exit code reports them.
#include <gtest/gtest.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <exception>
#include <map>
#include <optional>
#include <thread>

#include "engine/errors.h"
#include "launch/mpi_communicator.h"

namespace pgkm {
namespace {

const MpiSession* g_session = nullptr;

// Rank-dependent payload: byte i of rank r's message.
std::byte pattern(int rank, size_t i) {
  return static_cast<std::byte>((i * 131 + rank * 7) & 0xff);
}

std::vector<std::byte> make_message(int rank, size_t size) {
  std::vector<std::byte> bytes(size);
  for (size_t i = 0; i < size; ++i)
    bytes[i] = pattern(rank, i);
  return bytes;
}

// True if `bytes` is make_message(rank, size); reports the first wrong byte.
::testing::AssertionResult is_message(const std::vector<std::byte>& bytes, int rank, size_t size) {
  if (bytes.size() != size) {
    return ::testing::AssertionFailure()
           << "from rank " << rank << ": " << bytes.size() << " bytes, expected " << size;
  }
  for (size_t i = 0; i < size; ++i) {
    if (bytes[i] != pattern(rank, i)) {
      return ::testing::AssertionFailure() << "from rank " << rank << ": byte " << i << " wrong";
    }
  }
  return ::testing::AssertionSuccess();
}

TEST(MpiSession, WorldAndNode) {
  MpiCommunicator world(MPI_COMM_WORLD);
  EXPECT_EQ(g_session->world_rank(), world.rank());
  EXPECT_EQ(g_session->world_size(), world.size());
  // ctest runs every rank on this one node.
  EXPECT_EQ(g_session->local_rank(), g_session->world_rank());
  EXPECT_FALSE(g_session->hostname().empty());
}

TEST(MpiCommunicator, AllreduceSumInt64) {
  for (int64_t max_count : {kMpiMaxCount, int64_t{3}}) {
    MpiCommunicator comm(MPI_COMM_WORLD, max_count);
    const int64_t r = comm.rank();
    const int64_t p = comm.size();
    std::vector<int64_t> data(10);
    for (size_t i = 0; i < data.size(); ++i) {
      const int64_t sign = i % 2 == 0 ? 1 : -1;
      data[i] = sign * ((r + 1) * (int64_t{1} << 40) + static_cast<int64_t>(i));
    }
    comm.allreduce_sum(data);
    for (size_t i = 0; i < data.size(); ++i) {
      const int64_t sign = i % 2 == 0 ? 1 : -1;
      const int64_t expected = sign * (p * (p + 1) / 2 * (int64_t{1} << 40) + p * int64_t(i));
      EXPECT_EQ(data[i], expected) << "element " << i << ", max_count " << max_count;
    }
  }
}

TEST(MpiCommunicator, AllreduceSumUint64) {
  for (int64_t max_count : {kMpiMaxCount, int64_t{4}}) {
    MpiCommunicator comm(MPI_COMM_WORLD, max_count);
    const uint64_t r = static_cast<uint64_t>(comm.rank());
    const uint64_t p = static_cast<uint64_t>(comm.size());
    std::vector<uint64_t> data(9);
    for (size_t i = 0; i < data.size(); ++i)
      data[i] = (uint64_t{1} << 61) + r * 1000 + i;
    comm.allreduce_sum(data);
    for (size_t i = 0; i < data.size(); ++i) {
      // Above 2^63 for 4 ranks: checks the sum is unsigned.
      const uint64_t expected = p * (uint64_t{1} << 61) + p * (p - 1) / 2 * 1000 + p * i;
      EXPECT_EQ(data[i], expected) << "element " << i << ", max_count " << max_count;
    }
  }
  MpiCommunicator comm(MPI_COMM_WORLD);
  comm.allreduce_sum(std::span<uint64_t>());
}

// Gathers n codes (code i = 7 * i + 1) from uneven slices, copied or in place.
void check_allgather(MpiCommunicator& comm, int64_t n, bool in_place) {
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

TEST(MpiCommunicator, AllgatherUnevenSlices) {
  MpiCommunicator comm(MPI_COMM_WORLD);
  for (int64_t n : {0, 1, 2, 3, 5, 10, 11, 1001}) {
    check_allgather(comm, n, false);
    check_allgather(comm, n, true);
  }
}

TEST(MpiCommunicator, AllgatherChunked) {
  MpiCommunicator comm(MPI_COMM_WORLD, 3);  // n > 3 takes the broadcast path
  for (int64_t n : {2, 3, 10, 11, 100}) {
    check_allgather(comm, n, false);
    check_allgather(comm, n, true);
  }
}

TEST(MpiCommunicator, Broadcast) {
  for (int64_t max_count : {kMpiMaxCount, int64_t{7}}) {
    MpiCommunicator comm(MPI_COMM_WORLD, max_count);
    for (int root = 0; root < comm.size(); ++root) {
      for (size_t size : {size_t{0}, size_t{1}, size_t{1000}}) {
        auto data = comm.rank() == root ? make_message(root, size) : std::vector<std::byte>(size);
        comm.broadcast(data, root);
        EXPECT_TRUE(is_message(data, root, size)) << "root " << root << ", max_count " << max_count;
      }
    }
    comm.barrier();
  }
}

// Every rank (rank 0 too) sends rank 0 a `big`-byte message and then an empty one.
void check_send_to_rank_zero(MpiCommunicator& comm, size_t big) {
  constexpr int kTag = 17;
  auto first = comm.send_bytes(0, kTag, make_message(comm.rank(), big));
  auto second = comm.send_bytes(0, kTag, {});
  if (comm.rank() == 0) {
    std::map<int, int> received;  // source -> messages received from it
    for (int m = 0; m < 2 * comm.size(); ++m) {
      const std::optional<int> source = comm.wait_any_source(kTag);
      ASSERT_TRUE(source.has_value());
      ASSERT_TRUE(*source >= 0 && *source < comm.size()) << *source;
      const auto bytes = comm.recv_bytes(*source, kTag);
      const size_t expected = received[*source]++ == 0 ? big : 0;
      EXPECT_TRUE(is_message(bytes, *source, expected));
    }
    for (const auto& [source, count] : received)
      EXPECT_EQ(count, 2) << "rank " << source;
    EXPECT_EQ(static_cast<int>(received.size()), comm.size());
    EXPECT_FALSE(comm.probe_source(kTag).has_value());
  }
  first.wait();
  EXPECT_TRUE(first.done());
  second.wait();
  comm.barrier();
}

TEST(MpiCommunicator, SendBytesToRankZero) {
  MpiCommunicator comm(MPI_COMM_WORLD);
  check_send_to_rank_zero(comm, size_t{3} << 20);
}

TEST(MpiCommunicator, SendBytesChunked) {
  MpiCommunicator comm(MPI_COMM_WORLD, 4096);  // 3 MiB in 768 chunks
  check_send_to_rank_zero(comm, size_t{3} << 20);
  check_send_to_rank_zero(comm, 4096);
  check_send_to_rank_zero(comm, 4097);
}

TEST(MpiCommunicator, ProbeSource) {
  constexpr int kTag = 23;
  MpiCommunicator comm(MPI_COMM_WORLD);
  EXPECT_FALSE(comm.probe_source(kTag).has_value());
  comm.barrier();
  MpiCommunicator::PendingSend send = comm.send_bytes(0, kTag, make_message(comm.rank(), 100));
  if (comm.rank() == 0) {
    std::vector<bool> seen(static_cast<size_t>(comm.size()), false);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    for (int m = 0; m < comm.size();) {
      ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "only " << m << " messages came";
      const std::optional<int> source = comm.probe_source(kTag);
      if (!source) {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
        continue;
      }
      EXPECT_FALSE(seen[static_cast<size_t>(*source)]) << "rank " << *source << " twice";
      seen[static_cast<size_t>(*source)] = true;
      EXPECT_TRUE(is_message(comm.recv_bytes(*source, kTag), *source, 100));
      ++m;
    }
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (!send.done())
    ASSERT_LT(std::chrono::steady_clock::now(), deadline);
  comm.barrier();
  EXPECT_FALSE(comm.probe_source(kTag).has_value());
}

TEST(MpiCommunicator, FailedCallThrowsSystemError) {
  MpiCommunicator comm(MPI_COMM_WORLD);
  try {
    comm.send_bytes(comm.size(), 1, {});  // no such rank
    ADD_FAILURE() << "no exception";
  } catch (const SystemError& e) {
    EXPECT_NE(std::string(e.what()).find("MPI_Isend"), std::string::npos) << e.what();
  }
  comm.barrier();
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

// Runs every test on this rank; returns how many ranks had failures.
int64_t run_tests(const MpiSession& session) {
  ::testing::TestEventListeners& listeners = ::testing::UnitTest::GetInstance()->listeners();
  listeners.Append(new AbortOnFatalFailure(session.world_rank()));
  std::array<int64_t, 1> failed{RUN_ALL_TESTS() == 0 ? 0 : 1};
  MpiCommunicator(MPI_COMM_WORLD).allreduce_sum(failed);
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
    pgkm::g_session = &*session;
    // One full report, rank 0's; the other ranks print only their failures.
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
