#include "dist/mpi_communicator.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string_view>
#include <utility>

#include "core/errors.h"
#include "dist/poll_deadline.h"

namespace pgkm {
namespace {

// Throws SystemError naming `call` and MPI's text for `rc` unless rc is MPI_SUCCESS.
void check(int rc, const char* call) {
  if (rc == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING] = {};
  int length = 0;
  if (MPI_Error_string(rc, text, &length) != MPI_SUCCESS) length = 0;
  throw SystemError(str_cat(call, " failed: ", std::string_view(text, length), " (code ", rc, ")"));
}

// True between MPI_Init and MPI_Finalize, when MPI calls are allowed.
bool mpi_active() noexcept {
  int initialized = 0;
  int finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  return initialized != 0 && finalized == 0;
}

// Calls `call(offset, count)` over [0, n) in pieces of at most `max_count` elements.
template <typename Call>
void for_each_chunk(int64_t n, int64_t max_count, Call&& call) {
  for (int64_t offset = 0; offset < n; offset += max_count) {
    call(offset, static_cast<int>(std::min(max_count, n - offset)));
  }
}

template <typename T, typename Wait>
void allreduce_sum_in_place(MPI_Comm comm, std::span<T> data, MPI_Datatype type, int64_t max_count,
                            Wait&& wait) {
  for_each_chunk(static_cast<int64_t>(data.size()), max_count, [&](int64_t offset, int count) {
    MPI_Request request = MPI_REQUEST_NULL;
    check(MPI_Iallreduce(MPI_IN_PLACE, data.data() + offset, count, type, MPI_SUM, comm, &request),
          "MPI_Iallreduce");
    wait(request, "MPI_Allreduce");
  });
}

}  // namespace

MpiSession::MpiSession(int* argc, char*** argv) {
  int initialized = 0;
  check(MPI_Initialized(&initialized), "MPI_Initialized");
  int provided = MPI_THREAD_SINGLE;
  if (initialized != 0) {
    check(MPI_Query_thread(&provided), "MPI_Query_thread");
  } else {
    check(MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread");
    owns_mpi_ = true;
  }
  if (provided < MPI_THREAD_FUNNELED) {
    if (owns_mpi_) MPI_Finalize();
    throw SystemError(str_cat("MPI_Init_thread: the MPI library provides thread level ", provided,
                              ", pgkm needs MPI_THREAD_FUNNELED"));
  }
  check(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN), "MPI_Comm_set_errhandler");
  check(MPI_Comm_rank(MPI_COMM_WORLD, &world_rank_), "MPI_Comm_rank");
  check(MPI_Comm_size(MPI_COMM_WORLD, &world_size_), "MPI_Comm_size");
  char name[MPI_MAX_PROCESSOR_NAME] = {};
  int name_length = 0;
  check(MPI_Get_processor_name(name, &name_length), "MPI_Get_processor_name");
  hostname_.assign(name, static_cast<size_t>(name_length));
  // Collective, so done here once on every rank rather than lazily on some.
  MPI_Comm node = MPI_COMM_NULL;
  check(
      MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, world_rank_, MPI_INFO_NULL, &node),
      "MPI_Comm_split_type");
  const int rank_rc = MPI_Comm_rank(node, &local_rank_);
  const int size_rc = MPI_Comm_size(node, &local_size_);
  MPI_Comm_free(&node);
  check(rank_rc, "MPI_Comm_rank");
  check(size_rc, "MPI_Comm_size");
}

MpiSession::~MpiSession() {
  if (std::uncaught_exceptions() > 0) {
    std::fprintf(stderr, "pgkm: rank %d (%s): an exception left the MPI session, aborting\n",
                 world_rank_, hostname_.c_str());
    abort(1);
  }
  if (owns_mpi_ && mpi_active()) MPI_Finalize();
}

void MpiSession::abort(int code) noexcept {
  if (mpi_active()) MPI_Abort(MPI_COMM_WORLD, code);
  std::_Exit(code);
}

MpiCommunicator::MpiCommunicator(MPI_Comm comm, int64_t max_count) : max_count_(max_count) {
  PGKM_ASSERT(max_count >= 1 && max_count <= kMpiMaxCount, "max_count ", max_count);
  check(MPI_Comm_dup(comm, &comm_), "MPI_Comm_dup");
  try {
    check(MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN), "MPI_Comm_set_errhandler");
    check(MPI_Comm_rank(comm_, &rank_), "MPI_Comm_rank");
    check(MPI_Comm_size(comm_, &size_), "MPI_Comm_size");
    // Every rank's node name, for naming the ranks a timed-out collective waited for.
    std::vector<char> names(static_cast<size_t>(size_) * MPI_MAX_PROCESSOR_NAME, '\0');
    int length = 0;
    check(MPI_Get_processor_name(names.data() + static_cast<size_t>(rank_) * MPI_MAX_PROCESSOR_NAME,
                                 &length),
          "MPI_Get_processor_name");
    check(MPI_Allgather(MPI_IN_PLACE, 0, MPI_CHAR, names.data(), MPI_MAX_PROCESSOR_NAME, MPI_CHAR,
                        comm_),
          "MPI_Allgather");
    for (int r = 0; r < size_; ++r)
      hosts_.emplace_back(names.data() + static_cast<size_t>(r) * MPI_MAX_PROCESSOR_NAME);
  } catch (...) {
    MPI_Comm_free(&comm_);
    throw;
  }
}

MpiCommunicator::~MpiCommunicator() {
  if (comm_ != MPI_COMM_NULL && mpi_active()) MPI_Comm_free(&comm_);
}

void MpiCommunicator::set_timeout(std::chrono::milliseconds timeout) {
  PGKM_ASSERT(timeout.count() > 0, "MPI collective timeout ", timeout.count(), " ms");
  timeout_ = timeout;
}

void MpiCommunicator::wait_collective(MPI_Request& request, const char* call) {
  PollSchedule schedule;
  schedule.timeout = timeout_;
  const WaitOutcome outcome = poll_until(
      [&] {
        int done = 0;
        check(MPI_Test(&request, &done, MPI_STATUS_IGNORE), call);
        return done != 0 ? PollState::kDone : PollState::kPending;
      },
      schedule);
  if (outcome == WaitOutcome::kDone) return;
  // The request stays pending: the caller ends the job (MPI_Abort), which is the only way
  // out of a collective that a lost rank will never join.
  // Which rank did not join is not observable; every other rank is named, so that in a
  // job of two hosts the message names the lost one.
  std::string others;
  constexpr int kNamed = 8;
  int named = 0;
  for (int r = 0; r < size_ && named < kNamed; ++r) {
    if (r == rank_) continue;
    others += str_cat(named == 0 ? "" : ", ", "rank ", r, " on ", hosts_[static_cast<size_t>(r)]);
    ++named;
  }
  if (size_ - 1 > kNamed) others += str_cat(" and ", size_ - 1 - kNamed, " more");
  throw SystemError(str_cat(call, ": not every rank joined within ", describe_timeout(timeout_),
                            " (--comm-timeout) while waiting for ", others,
                            ": a rank, its host or the network to it is lost or stalled"));
}

void MpiCommunicator::allreduce_sum(std::span<int64_t> data) {
  allreduce_sum_in_place(comm_, data, MPI_INT64_T, max_count_,
                         [this](MPI_Request& r, const char* call) { wait_collective(r, call); });
}

void MpiCommunicator::allreduce_sum(std::span<uint64_t> data) {
  allreduce_sum_in_place(comm_, data, MPI_UINT64_T, max_count_,
                         [this](MPI_Request& r, const char* call) { wait_collective(r, call); });
}

void MpiCommunicator::allgather(std::span<const uint32_t> local, std::span<uint32_t> all) {
  const auto n = static_cast<int64_t>(all.size());
  const ShardRange mine = shard_range(n, rank_, size_);
  PGKM_ASSERT(static_cast<int64_t>(local.size()) == mine.size(), "rank ", rank_, " passes ",
              local.size(), " codes, its slice of ", n, " is ", mine.size());
  const bool in_place = local.data() == all.data() + mine.begin;
  if (n <= max_count_) {
    std::vector<int> counts(static_cast<size_t>(size_));
    std::vector<int> displacements(static_cast<size_t>(size_));
    for (int r = 0; r < size_; ++r) {
      const ShardRange slice = shard_range(n, r, size_);
      counts[static_cast<size_t>(r)] = static_cast<int>(slice.size());
      displacements[static_cast<size_t>(r)] = static_cast<int>(slice.begin);
    }
    MPI_Request request = MPI_REQUEST_NULL;
    check(MPI_Iallgatherv(in_place ? MPI_IN_PLACE : local.data(), static_cast<int>(local.size()),
                          MPI_UINT32_T, all.data(), counts.data(), displacements.data(),
                          MPI_UINT32_T, comm_, &request),
          "MPI_Iallgatherv");
    wait_collective(request, "MPI_Allgatherv");
    return;
  }
  // Allgatherv displacements are ints: beyond them, each rank broadcasts its slice.
  if (!in_place) std::copy(local.begin(), local.end(), all.begin() + mine.begin);
  for (int r = 0; r < size_; ++r) {
    const ShardRange slice = shard_range(n, r, size_);
    for_each_chunk(slice.size(), max_count_, [&](int64_t offset, int count) {
      MPI_Request request = MPI_REQUEST_NULL;
      check(MPI_Ibcast(all.data() + slice.begin + offset, count, MPI_UINT32_T, r, comm_, &request),
            "MPI_Ibcast");
      wait_collective(request, "MPI_Bcast");
    });
  }
}

void MpiCommunicator::broadcast(std::span<std::byte> data, int root) {
  PGKM_ASSERT(root >= 0 && root < size_, "broadcast root ", root, " of ", size_, " ranks");
  for_each_chunk(static_cast<int64_t>(data.size()), max_count_, [&](int64_t offset, int count) {
    MPI_Request request = MPI_REQUEST_NULL;
    check(MPI_Ibcast(data.data() + offset, count, MPI_BYTE, root, comm_, &request), "MPI_Ibcast");
    wait_collective(request, "MPI_Bcast");
  });
}

void MpiCommunicator::barrier() {
  MPI_Request request = MPI_REQUEST_NULL;
  check(MPI_Ibarrier(comm_, &request), "MPI_Ibarrier");
  wait_collective(request, "MPI_Barrier");
}

MpiCommunicator::PendingSend MpiCommunicator::send_bytes(int dest, int tag,
                                                         std::vector<std::byte> bytes) {
  PendingSend pending;
  pending.state_ = std::make_unique<PendingSend::State>();
  PendingSend::State& state = *pending.state_;
  state.length = bytes.size();
  state.payload = std::move(bytes);
  const int64_t chunk = std::min(kMpiMaxChunkBytes, max_count_);
  const auto n = static_cast<int64_t>(state.payload.size());
  state.requests.reserve(static_cast<size_t>(1 + (n + chunk - 1) / chunk));
  MPI_Request request = MPI_REQUEST_NULL;
  check(MPI_Isend(&state.length, 1, MPI_UINT64_T, dest, tag, comm_, &request), "MPI_Isend");
  state.requests.push_back(request);
  for_each_chunk(n, chunk, [&](int64_t offset, int count) {
    check(MPI_Isend(state.payload.data() + offset, count, MPI_BYTE, dest, tag, comm_, &request),
          "MPI_Isend");
    state.requests.push_back(request);
  });
  return pending;
}

std::optional<int> MpiCommunicator::probe_source(int tag) {
  int found = 0;
  MPI_Status status;
  check(MPI_Iprobe(MPI_ANY_SOURCE, tag, comm_, &found, &status), "MPI_Iprobe");
  if (found == 0) return std::nullopt;
  return status.MPI_SOURCE;
}

std::optional<int> MpiCommunicator::wait_any_source(int tag) {
  MPI_Status status;
  check(MPI_Probe(MPI_ANY_SOURCE, tag, comm_, &status), "MPI_Probe");
  return status.MPI_SOURCE;
}

std::vector<std::byte> MpiCommunicator::recv_bytes(int source, int tag) {
  MPI_Status status;
  check(MPI_Probe(source, tag, comm_, &status), "MPI_Probe");
  int count = 0;
  check(MPI_Get_count(&status, MPI_BYTE, &count), "MPI_Get_count");
  if (count != static_cast<int>(sizeof(uint64_t))) {
    throw SystemError(str_cat("recv_bytes: expected an 8-byte length header from rank ", source,
                              " with tag ", tag, ", got ", count, " bytes"));
  }
  uint64_t length = 0;
  check(MPI_Recv(&length, 1, MPI_UINT64_T, source, tag, comm_, MPI_STATUS_IGNORE), "MPI_Recv");
  std::vector<std::byte> bytes(length);
  const int64_t chunk = std::min(kMpiMaxChunkBytes, max_count_);
  for_each_chunk(static_cast<int64_t>(length), chunk, [&](int64_t offset, int expected) {
    MPI_Status part;
    check(MPI_Recv(bytes.data() + offset, expected, MPI_BYTE, source, tag, comm_, &part),
          "MPI_Recv");
    int received = 0;
    check(MPI_Get_count(&part, MPI_BYTE, &received), "MPI_Get_count");
    if (received != expected) {
      throw SystemError(str_cat("recv_bytes: payload chunk at byte ", offset, " from rank ", source,
                                " has ", received, " bytes, expected ", expected));
    }
  });
  return bytes;
}

MpiCommunicator::PendingSend& MpiCommunicator::PendingSend::operator=(
    PendingSend&& other) noexcept {
  if (this != &other) {
    finish();
    state_ = std::move(other.state_);
  }
  return *this;
}

MpiCommunicator::PendingSend::~PendingSend() {
  finish();
}

bool MpiCommunicator::PendingSend::done() {
  if (!state_) return true;
  int flag = 0;
  check(MPI_Testall(static_cast<int>(state_->requests.size()), state_->requests.data(), &flag,
                    MPI_STATUSES_IGNORE),
        "MPI_Testall");
  return flag != 0;
}

void MpiCommunicator::PendingSend::wait() {
  if (!state_) return;
  check(MPI_Waitall(static_cast<int>(state_->requests.size()), state_->requests.data(),
                    MPI_STATUSES_IGNORE),
        "MPI_Waitall");
}

void MpiCommunicator::PendingSend::finish() noexcept {
  if (!state_) return;
  const bool completed =
      std::all_of(state_->requests.begin(), state_->requests.end(),
                  [](MPI_Request request) { return request == MPI_REQUEST_NULL; });
  if (!completed && (std::uncaught_exceptions() > 0 || !mpi_active())) {
    static_cast<void>(state_.release());
    return;
  }
  if (!completed)
    MPI_Waitall(static_cast<int>(state_->requests.size()), state_->requests.data(),
                MPI_STATUSES_IGNORE);
  state_.reset();
}

}  // namespace pgkm
