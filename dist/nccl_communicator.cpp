#include "dist/nccl_communicator.h"

#include <cuda_runtime.h>
#include <nccl.h>

#include <algorithm>
#include <exception>
#include <string>

#include "core/errors.h"
#include "core/gpu_check.h"
#include "dist/poll_deadline.h"

namespace pgkm {

struct NcclCommunicator::Impl {
  int device = 0;
  int rank = 0;
  int size = 1;
  std::chrono::milliseconds timeout{0};
  cudaStream_t stream = nullptr;  // the host-span collectives' own stream
  ncclComm_t comm = nullptr;
  bool aborted = false;     // ncclCommAbort was called after an error or an expired wait
  void* staging = nullptr;  // device staging buffer, `capacity` bytes
  size_t capacity = 0;

  ~Impl() {
    cudaSetDevice(device);
    if (comm != nullptr) {
      // Unwinding: peers may be gone or mid-collective, so do not wait on them.
      if (std::uncaught_exceptions() > 0 || !finalize()) {
        ncclCommAbort(comm);
      } else {
        ncclCommDestroy(comm);
      }
      comm = nullptr;
    }
    if (stream != nullptr) cudaStreamDestroy(stream);
    if (staging != nullptr) cudaFree(staging);
  }

  // ncclCommFinalize, waited for with the deadline; false when it failed or expired (the
  // caller then aborts). Never throws: it runs in the destructor.
  bool finalize() noexcept {
    try {
      const ncclResult_t result = ncclCommFinalize(comm);
      if (result != ncclSuccess && result != ncclInProgress) return false;
      std::string error;
      return poll_until([&] { return poll_state(error); }, schedule()) == WaitOutcome::kDone;
    } catch (...) {
      return false;
    }
  }

  PollSchedule schedule() const { return {.timeout = timeout}; }

  // Makes `device` current and checks the communicator is usable; call first in every
  // collective (the caller's thread may have switched devices since).
  void begin() {
    if (aborted) {
      throw SystemError(str_cat("NCCL communicator on CUDA device ", device, " (rank ", rank,
                                " of ", size, ") was aborted after an earlier error"));
    }
    PGKM_CUDA_TRY(cudaSetDevice(device));
  }

  // The staging buffer, grown to at least `bytes`; its contents are not kept.
  std::byte* staging_bytes(size_t bytes) {
    if (bytes > capacity) {
      if (staging != nullptr) PGKM_CUDA_TRY(cudaFree(staging));
      staging = nullptr;
      capacity = 0;
      PGKM_CUDA_TRY(cudaMalloc(&staging, bytes));
      capacity = bytes;
    }
    return static_cast<std::byte*>(staging);
  }

  void abort_comm() noexcept {
    if (comm != nullptr) ncclCommAbort(comm);
    comm = nullptr;
    aborted = true;
  }

  std::string where() const {
    return str_cat("on CUDA device ", device, " (rank ", rank, " of ", size, ")");
  }

  [[noreturn]] void fail(const std::string& what, const std::string& why) {
    abort_comm();
    throw SystemError(str_cat("NCCL ", what, " ", where(), " failed: ", why,
                              "; the NCCL communicator was aborted"));
  }

  [[noreturn]] void expire(const std::string& what) {
    abort_comm();
    throw SystemError(str_cat("NCCL ", what, " ", where(), " did not finish within ",
                              describe_timeout(timeout),
                              " (--comm-timeout): a rank may have died or stalled; the NCCL "
                              "communicator was aborted"));
  }

  std::string nccl_error_text(ncclResult_t result) const {
    std::string text = str_cat(ncclGetErrorString(result), " (NCCL error ", int(result), ")");
    const char* last = comm != nullptr ? ncclGetLastError(comm) : nullptr;
    if (last != nullptr && *last != '\0') text += str_cat(": ", last);
    return text;
  }

  // One look at the communicator's state: pending while NCCL still works on a call
  // (ncclInProgress, non-blocking mode), failed on an asynchronous error.
  PollState poll_state(std::string& error) const {
    ncclResult_t state = ncclSuccess;
    const ncclResult_t got = ncclCommGetAsyncError(comm, &state);
    if (got != ncclSuccess) {
      error = str_cat("ncclCommGetAsyncError: ", nccl_error_text(got));
      return PollState::kFailed;
    }
    if (state == ncclInProgress) return PollState::kPending;
    if (state == ncclSuccess) return PollState::kDone;
    error = nccl_error_text(state);
    return PollState::kFailed;
  }

  // Completes a call on the non-blocking communicator: it returns ncclInProgress (or
  // ncclSuccess) and goes on in the background until ncclCommGetAsyncError leaves
  // ncclInProgress. Throws (after aborting) on an error or an expired deadline.
  void settle(ncclResult_t result, const char* call) {
    if (result != ncclSuccess && result != ncclInProgress) fail(call, nccl_error_text(result));
    std::string error;
    const WaitOutcome outcome = poll_until([&] { return poll_state(error); }, schedule());
    if (outcome == WaitOutcome::kTimedOut) expire(call);
    if (outcome == WaitOutcome::kFailed) fail(call, error);
  }

  // Waits for `on` (this communicator's stream or the backend's) with the deadline: a
  // failed peer or an expired wait aborts the communicator and throws instead of hanging.
  void wait(cudaStream_t on, const char* what) {
    std::string error;
    const WaitOutcome outcome = poll_until(
        [&] {
          const cudaError_t query = cudaStreamQuery(on);
          if (query == cudaSuccess) return PollState::kDone;
          if (query != cudaErrorNotReady) {
            error = str_cat("cudaStreamQuery: ", cudaGetErrorString(query));
            return PollState::kFailed;
          }
          const PollState state = poll_state(error);
          return state == PollState::kFailed ? state : PollState::kPending;
        },
        schedule());
    if (outcome == WaitOutcome::kTimedOut) expire(what);
    if (outcome == WaitOutcome::kFailed) fail(what, error);
  }

  template <typename T>
  void allreduce_sum(std::span<T> data, ncclDataType_t type) {
    begin();
    if (data.empty()) return;  // every rank passes the same size, so all skip together
    const size_t bytes = data.size_bytes();
    std::byte* buffer = staging_bytes(bytes);
    PGKM_CUDA_TRY(cudaMemcpyAsync(buffer, data.data(), bytes, cudaMemcpyHostToDevice, stream));
    settle(ncclAllReduce(buffer, buffer, data.size(), type, ncclSum, comm, stream),
           "ncclAllReduce");
    // Wait before copying back: a copy into pageable host memory blocks the host, and
    // would block past a hung collective.
    wait(stream, "ncclAllReduce");
    PGKM_CUDA_TRY(cudaMemcpyAsync(data.data(), buffer, bytes, cudaMemcpyDeviceToHost, stream));
    wait(stream, "cudaMemcpyAsync(DeviceToHost) after ncclAllReduce");
  }
};

NcclCommunicator::NcclCommunicator(Communicator& bootstrap, int device,
                                   std::chrono::milliseconds timeout)
    : impl_(std::make_unique<Impl>()),
      rank_(bootstrap.rank()),
      size_(bootstrap.size()),
      device_(device),
      timeout_(timeout) {
  PGKM_EXPECTS(timeout.count() > 0, "--comm-timeout",
               "the communication timeout must be positive, got ", timeout.count(), " ms");
  impl_->device = device;
  impl_->rank = rank_;
  impl_->size = size_;
  impl_->timeout = timeout;
  PGKM_CUDA_TRY(cudaSetDevice(device));
  PGKM_CUDA_TRY(cudaStreamCreateWithFlags(&impl_->stream, cudaStreamNonBlocking));
  ncclUniqueId id{};
  if (rank_ == 0) PGKM_NCCL_TRY(ncclGetUniqueId(&id));
  bootstrap.broadcast(std::span<std::byte>(reinterpret_cast<std::byte*>(&id), sizeof id), 0);
  // Non-blocking: a rank that never joins makes the wait below expire instead of
  // blocking ncclCommInitRank forever.
  ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
  config.blocking = 0;
  impl_->settle(ncclCommInitRankConfig(&impl_->comm, size_, id, rank_, &config),
                "ncclCommInitRankConfig");
}

NcclCommunicator::~NcclCommunicator() = default;

void NcclCommunicator::allreduce_sum(std::span<int64_t> data) {
  impl_->allreduce_sum(data, ncclInt64);
}

void NcclCommunicator::allreduce_sum(std::span<uint64_t> data) {
  impl_->allreduce_sum(data, ncclUint64);
}

void NcclCommunicator::allgather(std::span<const uint32_t> local, std::span<uint32_t> all) {
  const int64_t n = static_cast<int64_t>(all.size());
  const ShardRange mine = shard_range(n, rank_, size_);
  PGKM_ASSERT(static_cast<int64_t>(local.size()) == mine.size(), "allgather: rank ", rank_,
              " passed ", local.size(), " codes, its slice of ", n, " has ", mine.size());
  impl_->begin();
  if (n == 0) return;
  // Slices differ by at most one; NCCL gathers equal counts, so pad each to the largest.
  int64_t slice = 0;
  for (int r = 0; r < size_; ++r)
    slice = std::max(slice, shard_range(n, r, size_).size());
  const size_t slice_bytes = static_cast<size_t>(slice) * sizeof(uint32_t);
  std::byte* buffer = impl_->staging_bytes(slice_bytes * static_cast<size_t>(size_));
  std::byte* own = buffer + slice_bytes * static_cast<size_t>(rank_);
  if (!local.empty()) {
    PGKM_CUDA_TRY(cudaMemcpyAsync(own, local.data(), local.size_bytes(), cudaMemcpyHostToDevice,
                                  impl_->stream));
  }
  // In place: this rank's send buffer is its own block of the receive buffer.
  impl_->settle(ncclAllGather(own, buffer, static_cast<size_t>(slice), ncclUint32, impl_->comm,
                              impl_->stream),
                "ncclAllGather");
  impl_->wait(impl_->stream, "ncclAllGather");
  // `local` may alias `all`; it was read (copied to the device) before `all` is written.
  for (int r = 0; r < size_; ++r) {
    const ShardRange theirs = shard_range(n, r, size_);
    if (theirs.size() == 0) continue;
    PGKM_CUDA_TRY(cudaMemcpyAsync(all.data() + theirs.begin,
                                  buffer + slice_bytes * static_cast<size_t>(r),
                                  static_cast<size_t>(theirs.size()) * sizeof(uint32_t),
                                  cudaMemcpyDeviceToHost, impl_->stream));
  }
  impl_->wait(impl_->stream, "cudaMemcpyAsync(DeviceToHost) after ncclAllGather");
}

void NcclCommunicator::broadcast(std::span<std::byte> data, int root) {
  PGKM_ASSERT(root >= 0 && root < size_, "broadcast: root ", root, " of ", size_, " ranks");
  impl_->begin();
  if (data.empty()) return;
  std::byte* buffer = impl_->staging_bytes(data.size());
  if (rank_ == root) {
    PGKM_CUDA_TRY(
        cudaMemcpyAsync(buffer, data.data(), data.size(), cudaMemcpyHostToDevice, impl_->stream));
  }
  impl_->settle(
      ncclBroadcast(buffer, buffer, data.size(), ncclUint8, root, impl_->comm, impl_->stream),
      "ncclBroadcast");
  impl_->wait(impl_->stream, "ncclBroadcast");
  if (rank_ == root) return;
  PGKM_CUDA_TRY(
      cudaMemcpyAsync(data.data(), buffer, data.size(), cudaMemcpyDeviceToHost, impl_->stream));
  impl_->wait(impl_->stream, "cudaMemcpyAsync(DeviceToHost) after ncclBroadcast");
}

void NcclCommunicator::barrier() {
  int64_t one = 1;
  allreduce_sum(std::span<int64_t>(&one, 1));
}

void NcclCommunicator::allreduce_sum_device(std::span<const DeviceIntegers> buffers,
                                            DeviceStream stream) {
  PGKM_ASSERT(stream.device == device_, "allreduce_sum_device: stream of CUDA device ",
              stream.device, " on the NCCL communicator of device ", device_);
  PGKM_ASSERT(stream.stream != nullptr,
              "allreduce_sum_device: the legacy default stream orders nothing for NCCL");
  impl_->begin();
  const auto on = static_cast<cudaStream_t>(stream.stream);
  // One group: the sums and the counts travel in one launch. Every call is made (and
  // ncclGroupEnd reached) even after an error, so NCCL's group state stays balanced.
  PGKM_NCCL_TRY(ncclGroupStart());
  ncclResult_t first_error = ncclSuccess;
  for (const DeviceIntegers& b : buffers) {
    if (b.count == 0) continue;  // every rank passes the same counts
    const ncclDataType_t type = b.type == DeviceIntegers::Type::kInt64 ? ncclInt64 : ncclUint64;
    const ncclResult_t r = ncclAllReduce(b.data, b.data, b.count, type, ncclSum, impl_->comm, on);
    if (first_error == ncclSuccess && r != ncclSuccess && r != ncclInProgress) first_error = r;
  }
  const ncclResult_t ended = ncclGroupEnd();
  if (first_error != ncclSuccess) impl_->settle(first_error, "ncclAllReduce (device sums)");
  impl_->settle(ended, "ncclGroupEnd (device sums)");
  impl_->wait(on, "ncclAllReduce of device sums on the backend's stream");
}

}  // namespace pgkm
