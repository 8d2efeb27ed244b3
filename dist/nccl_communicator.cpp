#include "dist/nccl_communicator.h"

#include <cuda_runtime.h>
#include <nccl.h>

#include <algorithm>
#include <chrono>
#include <exception>
#include <thread>

#include "core/errors.h"
#include "core/gpu_check.h"
#include "dist/mpi_communicator.h"

namespace pgkm {
struct NcclCommunicator::Impl {
  int device = 0;
  cudaStream_t stream = nullptr;
  ncclComm_t comm = nullptr;
  bool aborted = false;     // ncclCommAbort was called after an asynchronous error
  void* staging = nullptr;  // device staging buffer, `capacity` bytes
  size_t capacity = 0;

  ~Impl() {
    cudaSetDevice(device);
    if (comm != nullptr) {
      // Unwinding: peers may be gone or mid-collective, so do not wait on them.
      if (std::uncaught_exceptions() > 0) {
        ncclCommAbort(comm);
      } else {
        ncclCommDestroy(comm);
      }
    }
    if (stream != nullptr) cudaStreamDestroy(stream);
    if (staging != nullptr) cudaFree(staging);
  }

  // Makes `device` current and checks the communicator is usable; call first in every
  // collective (the caller's thread may have switched devices since).
  void begin() {
    if (aborted) throw SystemError("NCCL communicator was aborted after an earlier error");
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

  // Waits for the stream by polling, so that a failed peer (an asynchronous NCCL error)
  // aborts the communicator and throws instead of hanging this rank.
  void wait(const char* what) {
    for (;;) {
      const cudaError_t query = cudaStreamQuery(stream);
      if (query == cudaSuccess) return;
      if (query != cudaErrorNotReady) throw_if_cuda_error(query, "cudaStreamQuery");
      ncclResult_t state = ncclSuccess;
      PGKM_NCCL_TRY(ncclCommGetAsyncError(comm, &state));
      if (state != ncclSuccess && state != ncclInProgress) {
        ncclCommAbort(comm);
        comm = nullptr;
        aborted = true;
        throw SystemError(str_cat("NCCL ", what, " failed: ", ncclGetErrorString(state)));
      }
      std::this_thread::sleep_for(std::chrono::microseconds(20));
    }
  }

  template <typename T>
  void allreduce_sum(std::span<T> data, ncclDataType_t type) {
    begin();
    if (data.empty()) return;  // every rank passes the same size, so all skip together
    const size_t bytes = data.size_bytes();
    std::byte* buffer = staging_bytes(bytes);
    PGKM_CUDA_TRY(cudaMemcpyAsync(buffer, data.data(), bytes, cudaMemcpyHostToDevice, stream));
    PGKM_NCCL_TRY(ncclAllReduce(buffer, buffer, data.size(), type, ncclSum, comm, stream));
    // Wait before copying back: a copy into pageable host memory blocks the host, and
    // would block past a hung collective.
    wait("ncclAllReduce");
    PGKM_CUDA_TRY(cudaMemcpyAsync(data.data(), buffer, bytes, cudaMemcpyDeviceToHost, stream));
    wait("cudaMemcpyAsync(DeviceToHost)");
  }
};

NcclCommunicator::NcclCommunicator(MpiCommunicator& bootstrap, int device)
    : impl_(std::make_unique<Impl>()),
      rank_(bootstrap.rank()),
      size_(bootstrap.size()),
      device_(device) {
  impl_->device = device;
  PGKM_CUDA_TRY(cudaSetDevice(device));
  PGKM_CUDA_TRY(cudaStreamCreateWithFlags(&impl_->stream, cudaStreamNonBlocking));
  ncclUniqueId id{};
  if (rank_ == 0) PGKM_NCCL_TRY(ncclGetUniqueId(&id));
  bootstrap.broadcast(std::span<std::byte>(reinterpret_cast<std::byte*>(&id), sizeof id), 0);
  PGKM_NCCL_TRY(ncclCommInitRank(&impl_->comm, size_, id, rank_));
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
  PGKM_NCCL_TRY(ncclAllGather(own, buffer, static_cast<size_t>(slice), ncclUint32, impl_->comm,
                              impl_->stream));
  impl_->wait("ncclAllGather");
  // `local` may alias `all`; it was read (copied to the device) before `all` is written.
  for (int r = 0; r < size_; ++r) {
    const ShardRange theirs = shard_range(n, r, size_);
    if (theirs.size() == 0) continue;
    PGKM_CUDA_TRY(cudaMemcpyAsync(all.data() + theirs.begin,
                                  buffer + slice_bytes * static_cast<size_t>(r),
                                  static_cast<size_t>(theirs.size()) * sizeof(uint32_t),
                                  cudaMemcpyDeviceToHost, impl_->stream));
  }
  impl_->wait("cudaMemcpyAsync(DeviceToHost)");
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
  PGKM_NCCL_TRY(
      ncclBroadcast(buffer, buffer, data.size(), ncclUint8, root, impl_->comm, impl_->stream));
  impl_->wait("ncclBroadcast");
  if (rank_ == root) return;
  PGKM_CUDA_TRY(
      cudaMemcpyAsync(data.data(), buffer, data.size(), cudaMemcpyDeviceToHost, impl_->stream));
  impl_->wait("cudaMemcpyAsync(DeviceToHost)");
}

void NcclCommunicator::barrier() {
  int64_t one = 1;
  allreduce_sum(std::span<int64_t>(&one, 1));
}

int NcclCommunicator::visible_device_count() noexcept {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) return 0;
  return count;
}

}  // namespace pgkm
