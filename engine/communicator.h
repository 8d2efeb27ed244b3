// The communicator seam (docs/ARCHITECTURE.md, "The two seams"): who adds up what.
//
// A layer split over a group of ranks runs the same k-means on every rank; each rank
// assigns its slice of the points, and the group adds up per-centroid sums and counts
// (exact integers, so the total is the same bits in any order) and gathers codes.
// Implementations: SingleProcessCommunicator (here), MPI (dist/mpi_communicator.h),
// NCCL (with the CUDA backend). No MPI, NCCL or CUDA header is included here.
//
// A communicator may also add up integers that live in device memory, on the stream
// of the backend that computed them (allreduce_sum_device): with the CUDA backend and
// NCCL the per-centroid sums never cross PCIe before they are reduced. Device memory
// and streams cross this seam as opaque handles.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace pgkm {

// 64-bit integers in device memory, reduced in place by allreduce_sum_device.
struct DeviceIntegers {
  enum class Type { kInt64, kUint64 };
  void* data = nullptr;  // device address of `count` values
  size_t count = 0;
  Type type = Type::kInt64;
};

// The stream device work is ordered on (a cudaStream_t) and its CUDA device ordinal.
struct DeviceStream {
  void* stream = nullptr;
  int device = -1;
};

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;  // 0 .. size()-1
  virtual int size() const = 0;

  // Element-wise sum over all ranks, in place; every rank gets the result.
  virtual void allreduce_sum(std::span<int64_t> data) = 0;
  virtual void allreduce_sum(std::span<uint64_t> data) = 0;
  // Concatenation of every rank's `local` in rank order, on every rank. all.size() must be
  // the sum of the local sizes; each rank's local size is its slice (shard_range below).
  virtual void allgather(std::span<const uint32_t> local, std::span<uint32_t> all) = 0;
  // Copies root's `data` to every rank.
  virtual void broadcast(std::span<std::byte> data, int root) = 0;
  virtual void barrier() = 0;

  // Whether allreduce_sum_device works: the group can add up device memory on CUDA
  // device `device` (NCCL, one GPU per rank). The host-memory collectives above always work.
  virtual bool reduces_on_device(int /*device*/) const { return false; }
  // Element-wise sum over all ranks of each buffer, in place, enqueued on `stream` after
  // the work already queued there (no copy to the host). Returns once the sums are
  // complete, or throws SystemError when the group failed or did not finish within its
  // deadline (the job then ends, docs/CONVENTIONS.md #7); a later download on `stream`
  // therefore does not wait for other ranks. Every rank passes buffers of the same
  // counts and types. Only when reduces_on_device(stream.device); the default asserts.
  virtual void allreduce_sum_device(std::span<const DeviceIntegers> buffers, DeviceStream stream);
};

// The one-rank group: every collective is the identity.
class SingleProcessCommunicator final : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  void allreduce_sum(std::span<int64_t>) override {}
  void allreduce_sum(std::span<uint64_t>) override {}
  void allgather(std::span<const uint32_t> local, std::span<uint32_t> all) override;
  void broadcast(std::span<std::byte>, int) override {}
  void barrier() override {}
};

// The contiguous slice [begin, end) of n items that rank `rank` of `size` owns. Slices
// follow rank order and cover 0..n exactly once.
struct ShardRange {
  int64_t begin = 0;
  int64_t end = 0;
  int64_t size() const { return end - begin; }
};
inline ShardRange shard_range(int64_t n, int rank, int size) {
  return {n * rank / size, n * (rank + 1) / size};
}

}  // namespace pgkm
