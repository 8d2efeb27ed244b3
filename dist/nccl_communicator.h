// NCCL implementation of the communicator seam (engine/communicator.h), bootstrapped from
// another communicator (the job's MPI one, docs/ARCHITECTURE.md): rank 0 makes the NCCL
// unique id, the bootstrap communicator broadcasts it, and every rank joins on its own
// GPU. Used for layers shared by every rank when each rank has a GPU of its own
// (pipeline/resources.h choose_shared_layer_comm); NCCL refuses two ranks on one GPU.
//
// Why it exists: with the CUDA backend, a sharded layer adds up its per-centroid sums in
// device memory, on the backend's stream (allreduce_sum_device), over NVLink /
// InfiniBand. The host-span collectives copy host -> device staging -> NCCL -> host:
// correct, but they pay two PCIe copies per call (an MpiCommunicator may be faster for
// small host payloads); the engine uses them for the codes.
//
// Abort rather than hang (docs/CONVENTIONS.md #6, #7): the communicator is non-blocking
// (ncclCommInitRankConfig with blocking = 0), and every wait, the initialisation
// included, polls cudaStreamQuery and ncclCommGetAsyncError with a deadline
// (dist/poll_deadline.h; --comm-timeout). An asynchronous NCCL error or an expired
// deadline aborts the NCCL communicator (ncclCommAbort) and throws SystemError naming
// the call, the device, the rank and the timeout; the caller's usual error path then ends
// the job (launch/main.cpp: World::abort, MPI_Abort). A peer that died inside one node is
// never reported by NCCL, so the deadline is what ends that wait. After an abort every
// collective throws. The normal end is ncclCommFinalize (waited for with the same
// deadline) then ncclCommDestroy; destructors never throw.
//
// No CUDA or NCCL header is included here (docs/CONVENTIONS.md #3): the handles live in an
// opaque implementation in nccl_communicator.cpp. Built only when CMake finds CUDA, MPI
// and NCCL (target pgkm_nccl, PGKM_HAVE_NCCL).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <span>

#include "engine/communicator.h"

namespace pgkm {

// A Communicator over an NCCL communicator spanning the ranks of a bootstrap
// communicator, one GPU per rank. Use from one thread; not copyable or movable.
class NcclCommunicator final : public Communicator {
 public:
  // Collective over `bootstrap` (used only here, for the id broadcast; it may be destroyed
  // afterwards). `device`: the CUDA device this rank uses, which no other rank of the
  // group uses. Ranks and their order are those of `bootstrap`. `timeout`: the most any
  // wait of this communicator may take (> 0, else InputError naming --comm-timeout).
  // Throws SystemError if a CUDA or NCCL call fails or the initialisation does not
  // finish within `timeout` (a rank that never joins).
  NcclCommunicator(Communicator& bootstrap, int device, std::chrono::milliseconds timeout);
  // ncclCommFinalize and ncclCommDestroy; ncclCommAbort instead while an exception
  // unwinds the stack or when finalizing fails or exceeds the timeout (peers may be
  // gone). Then frees the stream and staging buffer; never throws.
  ~NcclCommunicator() override;
  NcclCommunicator(const NcclCommunicator&) = delete;
  NcclCommunicator& operator=(const NcclCommunicator&) = delete;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  // The CUDA device this rank runs its collectives on.
  int device() const { return device_; }
  std::chrono::milliseconds timeout() const { return timeout_; }

  // ncclAllReduce(ncclSum) of int64 / uint64 host data, in place; every rank passes the
  // same data.size().
  void allreduce_sum(std::span<int64_t> data) override;
  void allreduce_sum(std::span<uint64_t> data) override;
  // `local` is this rank's slice shard_range(all.size(), rank, size) (asserted) and may
  // be that very slice of `all`. NCCL needs equal counts, so every slice is padded to the
  // largest slice, gathered with ncclAllGather, and compacted into `all` in rank order.
  void allgather(std::span<const uint32_t> local, std::span<uint32_t> all) override;
  // ncclBroadcast of bytes from `root`; every rank passes the same data.size().
  void broadcast(std::span<std::byte> data, int root) override;
  // An allreduce of one value.
  void barrier() override;

  // True for this communicator's device.
  bool reduces_on_device(int device) const override { return device == device_; }
  // One ncclGroupStart/End of in-place ncclAllReduce(ncclSum) calls on `stream` (the
  // backend's), then a wait for `stream` with the deadline.
  void allreduce_sum_device(std::span<const DeviceIntegers> buffers, DeviceStream stream) override;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  int rank_ = 0;
  int size_ = 1;
  int device_ = 0;
  std::chrono::milliseconds timeout_;
};

}  // namespace pgkm
