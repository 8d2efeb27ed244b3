// MpiCommunicator and MpiSession (dist/mpi_communicator.h), run by ctest as
// `mpiexec -n N` for N = 1..4. Every rank runs every test.
// No failure may hang the job (tests/mpi/mpi_test_main.h).
#include <gtest/gtest.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <exception>
#include <map>
#include <optional>
#include <thread>

#include "core/errors.h"
#include "dist/mpi_communicator.h"
#include "tests/mpi/mpi_test_main.h"

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

using mpitest::check_allgather;

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

// A collective that a rank joins too late fails on the others at the deadline, naming
// the ranks it waited for (--comm-timeout; a lost host never joins at all).
TEST(MpiCommunicator, CollectiveTimesOutNamingTheOtherRanks) {
  MpiCommunicator comm(MPI_COMM_WORLD);
  EXPECT_EQ(comm.timeout(), std::chrono::seconds(300));
  if (comm.size() < 2) GTEST_SKIP() << "needs a second rank";
  comm.set_timeout(std::chrono::milliseconds(200));
  if (comm.rank() == 1) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));
    comm.barrier();  // completes: every other rank entered it long ago
  } else {
    const auto start = std::chrono::steady_clock::now();
    try {
      comm.barrier();
      ADD_FAILURE() << "no timeout";
    } catch (const SystemError& e) {
      const std::string text = e.what();
      EXPECT_NE(text.find("MPI_Barrier: not every rank joined within 0.2 s (--comm-timeout)"),
                std::string::npos)
          << text;
      EXPECT_NE(text.find("rank 1 on " + g_session->hostname()), std::string::npos) << text;
      EXPECT_EQ(text.find(str_cat("rank ", comm.rank(), " on")), std::string::npos) << text;
    }
    EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(1400));
  }
  // The timed-out barrier is still pending on the early ranks and completes when rank 1
  // joins; the next one needs every rank again.
  comm.set_timeout(std::chrono::seconds(60));
  comm.barrier();
}

}  // namespace
}  // namespace pgkm

int main(int argc, char** argv) {
  return pgkm::mpitest::mpi_test_main(argc, argv, [](const pgkm::MpiSession& session) {
    pgkm::g_session = &session;
    return RUN_ALL_TESTS();
  });
}
