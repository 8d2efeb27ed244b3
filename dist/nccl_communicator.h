// NCCL implementation of the communicator seam (engine/communicator.h), bootstrapped from
// MPI (docs/ARCHITECTURE.md): rank 0 makes the NCCL unique id, the MPI communicator broadcasts
// it, and every rank joins with ncclCommInitRank on its local GPU.
//
// Why it exists: with the CUDA backend, sharded layers can add up their per-centroid sums
// and gather codes over NVLink / InfiniBand through NCCL rather than through MPI. The
// interface takes HOST spans, so every collective here copies host -> device staging ->
// NCCL -> host: correct, but it pays two PCIe copies per call that a device-resident
// caller would not (an MpiCommunicator may well be faster for small host payloads).
//
// Errors (docs/CONVENTIONS.md #6, #7): every failed CUDA or NCCL call throws SystemError naming
// the call and the library's error string. Waits poll cudaStreamQuery and
// ncclCommGetAsyncError instead of blocking, so a failed peer makes this rank abort the
// NCCL communicator and throw rather than hang. After such an abort every collective
// throws SystemError. Destructors never throw.
//
// No CUDA or NCCL header is included here (docs/CONVENTIONS.md #3): the handles live in an
// opaque implementation in nccl_communicator.cpp. Built only when CMake finds CUDA, MPI
// and NCCL (target pgkm_nccl, PGKM_HAVE_NCCL).
#pragma once

#include <cstdint>
#include <memory>
#include <span>

#include "engine/communicator.h"

namespace pgkm {

class MpiCommunicator;

// A Communicator over an NCCL communicator spanning the ranks of an MPI communicator, one
// GPU per rank. Use from one thread; not copyable or movable.
class NcclCommunicator final : public Communicator {
 public:
  // Collective over `bootstrap` (used only here, for the id broadcast; it may be destroyed
  // afterwards). `device`: the CUDA device this rank uses, 0 .. visible_device_count()-1,
  // typically MpiSession::local_rank() % visible_device_count(). Ranks and their order are
  // those of `bootstrap`. Throws SystemError if a CUDA or NCCL call fails.
  NcclCommunicator(MpiCommunicator& bootstrap, int device);
  // ncclCommDestroy (ncclCommAbort while an exception unwinds the stack), then frees the
  // stream and staging buffer; never throws.
  ~NcclCommunicator() override;
  NcclCommunicator(const NcclCommunicator&) = delete;
  NcclCommunicator& operator=(const NcclCommunicator&) = delete;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  // The CUDA device this rank runs its collectives on.
  int device() const { return device_; }

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

  // The number of CUDA devices this process sees; 0 if there are none or the CUDA
  // runtime reports an error (no driver). Never throws.
  static int visible_device_count() noexcept;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  int rank_ = 0;
  int size_ = 1;
  int device_ = 0;
};

}  // namespace pgkm
