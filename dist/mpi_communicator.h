// MPI implementation of the communicator seam (engine/communicator.h), plus the MPI
// process lifetime (MpiSession) and point-to-point byte messages that stream finished
// layers to rank 0. Only launch/ includes this header; engine/ never sees MPI.
//
// Errors (docs/CONVENTIONS.md #6, #7): every failed MPI call throws SystemError naming the
// call and MPI_Error_string; the communicators use MPI_ERRORS_RETURN so failures come
// back as codes. Destructors never throw. MPI is used from the main thread only
// (MPI_THREAD_FUNNELED).
#pragma once

#include <mpi.h>

#include <chrono>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "engine/communicator.h"

namespace pgkm {

// The MPI library's lifetime in this process (RAII): one per process, in main(), outliving
// every MpiCommunicator. Not copyable.
class MpiSession {
 public:
  // MPI_Init_thread(MPI_THREAD_FUNNELED); argc/argv may be null. If MPI is already
  // initialized, the session uses it and leaves finalizing to whoever initialized it.
  // Sets MPI_ERRORS_RETURN on MPI_COMM_WORLD. Throws SystemError if MPI cannot give
  // MPI_THREAD_FUNNELED or a call fails. Collective over MPI_COMM_WORLD.
  explicit MpiSession(int* argc = nullptr, char*** argv = nullptr);
  // MPI_Finalize if this session initialized MPI. Destroyed while an exception unwinds
  // the stack, it calls abort(1) instead: finalize waits for every rank, and the others
  // may be waiting in a collective that this rank will never join.
  ~MpiSession();
  MpiSession(const MpiSession&) = delete;
  MpiSession& operator=(const MpiSession&) = delete;

  // MPI_Abort(MPI_COMM_WORLD, code): ends every rank of the job. Never returns; callable
  // with or without a session (without an initialized MPI it exits this process).
  [[noreturn]] static void abort(int code) noexcept;

  int world_rank() const { return world_rank_; }  // 0 .. world_size()-1
  int world_size() const { return world_size_; }
  // Rank among the ranks on this node (MPI_COMM_TYPE_SHARED), e.g. to pick a GPU.
  int local_rank() const { return local_rank_; }
  // How many ranks share this node.
  int local_size() const { return local_size_; }
  // MPI_Get_processor_name: the node's name, for error messages.
  const std::string& hostname() const { return hostname_; }

 private:
  bool owns_mpi_ = false;  // this session called MPI_Init_thread
  int world_rank_ = 0;
  int world_size_ = 1;
  int local_rank_ = 0;
  int local_size_ = 1;
  std::string hostname_;
};

// The largest element count one MPI call takes (its count argument is an int).
inline constexpr int64_t kMpiMaxCount = INT_MAX;
// Largest payload chunk of send_bytes / recv_bytes: 1 GiB.
inline constexpr int64_t kMpiMaxChunkBytes = int64_t{1} << 30;

// A Communicator over a private duplicate of an MPI communicator (MPI_Comm_dup), so its
// messages never match anyone else's. Messages longer than kMpiMaxCount elements are
// cut into several MPI calls. Use from the main thread only; not copyable or movable.
// Collectives are started non-blocking and polled with a deadline (set_timeout): a rank
// that never joins ends the wait with an error instead of hanging the job.
//
// Point-to-point byte messages (send_bytes / recv_bytes), protocol:
//   1. a header: one uint64 (MPI_UINT64_T), the payload length L in bytes;
//   2. the payload: ceil(L / C) messages of MPI_BYTE of at most C bytes each, in order,
//      where C = min(kMpiMaxChunkBytes, max_count); none when L == 0.
// All parts use the caller's tag, and MPI keeps messages from one sender with one tag
// in order. recv_bytes reads a whole message, so on a tag used only for these messages,
// the first message waiting from any sender is always a header. Sender and receiver
// must use the same max_count.
class MpiCommunicator final : public Communicator {
 public:
  class PendingSend;

  // Duplicates `comm` and sets MPI_ERRORS_RETURN on the duplicate. Collective over
  // `comm`. `max_count`: elements per MPI call (default the MPI limit); all ranks must
  // pass the same value. Tests pass small values to exercise the chunked paths.
  explicit MpiCommunicator(MPI_Comm comm, int64_t max_count = kMpiMaxCount);
  // MPI_Comm_free; never throws. Not collective in effect, but every rank should
  // destroy its communicator in the same order it created it.
  ~MpiCommunicator() override;
  MpiCommunicator(const MpiCommunicator&) = delete;
  MpiCommunicator& operator=(const MpiCommunicator&) = delete;

  int rank() const override { return rank_; }
  int size() const override { return size_; }

  // MPI_Allreduce(MPI_IN_PLACE, MPI_SUM); every rank passes the same data.size().
  void allreduce_sum(std::span<int64_t> data) override;
  void allreduce_sum(std::span<uint64_t> data) override;
  // MPI_Allgatherv: `local` is this rank's slice shard_range(all.size(), rank, size)
  // (asserted). `local` may be that very slice of `all` (gathers in place).
  void allgather(std::span<const uint32_t> local, std::span<uint32_t> all) override;
  // MPI_Bcast of bytes from `root`; every rank passes the same data.size().
  void broadcast(std::span<std::byte> data, int root) override;
  void barrier() override;

  // Starts sending `bytes` to rank `dest` with tag `tag` (protocol above), without
  // blocking; the returned PendingSend owns the buffer until the send completes.
  PendingSend send_bytes(int dest, int tag, std::vector<std::byte> bytes);
  // The source of a message header waiting with tag `tag` (MPI_Iprobe, MPI_ANY_SOURCE),
  // or nullopt if none is waiting now. Does not block.
  std::optional<int> probe_source(int tag);
  // Blocks until a message header with tag `tag` arrives from any rank (MPI_Probe) and
  // returns its source; the optional always holds a value here, the same type as
  // probe_source so callers can poll or block with one code path.
  std::optional<int> wait_any_source(int tag);
  // Receives one whole message from `source` with tag `tag` (blocking). Throws
  // SystemError if the first message waiting is not a header.
  std::vector<std::byte> recv_bytes(int source, int tag);

  // The duplicated communicator, for MPI calls this class does not wrap.
  MPI_Comm comm() const { return comm_; }

  // The most one collective (allreduce_sum, allgather, broadcast, barrier) may wait for
  // the other ranks; > 0. Default 300 s (QuantizeParams::comm_timeout, --comm-timeout).
  void set_timeout(std::chrono::milliseconds timeout);
  std::chrono::milliseconds timeout() const { return timeout_; }

 private:
  // Polls a started collective (MPI_Test, dist/poll_deadline.h) until it completes or the
  // timeout passes: then throws SystemError naming `call` and the timeout, leaving the
  // request pending for the job's abort. A blocking MPI collective whose peer's host
  // vanished (no TCP reset: a cut link, a powered-off node) never returns.
  void wait_collective(MPI_Request& request, const char* call);

  MPI_Comm comm_ = MPI_COMM_NULL;
  std::chrono::milliseconds timeout_{std::chrono::seconds(300)};
  std::vector<std::string> hosts_;  // MPI_Get_processor_name of each rank
  int rank_ = 0;
  int size_ = 1;
  int64_t max_count_ = kMpiMaxCount;
};

// A send in flight (from MpiCommunicator::send_bytes): owns the payload and the MPI
// requests. Movable, not copyable.
class MpiCommunicator::PendingSend {
 public:
  PendingSend() = default;
  PendingSend(PendingSend&&) noexcept = default;
  // Finishes the send held now (as the destructor does), then takes over `other`'s.
  PendingSend& operator=(PendingSend&& other) noexcept;
  // Waits for the send to complete; never throws. Destroyed while an exception unwinds
  // the stack, it does not wait (the receiver may never come: the job is about to
  // abort) and leaks the buffer, so MPI never reads freed memory.
  ~PendingSend();

  // True once every part has been sent (MPI_Testall); the buffer may then be reused.
  bool done();
  // Blocks until every part has been sent (MPI_Waitall).
  void wait();

 private:
  friend class MpiCommunicator;
  struct State {
    uint64_t length = 0;                // the header's buffer
    std::vector<std::byte> payload;     // the payload's buffer
    std::vector<MPI_Request> requests;  // header, then payload chunks
  };
  // Waits and frees, or leaks during unwinding; never throws.
  void finish() noexcept;

  std::unique_ptr<State> state_;  // on the heap, so buffer addresses survive moves
};

}  // namespace pgkm
