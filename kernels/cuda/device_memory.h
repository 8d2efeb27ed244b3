// Internal to kernels/cuda: RAII owners of a stream, device memory and pinned host
// memory (CONVENTIONS.md #8). Destructors never throw; every other failure throws
// SystemError with the CUDA call's text.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <cstddef>

#include "core/gpu_check.h"

namespace pgkm::cuda {

// A non-blocking stream: it does not synchronise with the legacy default stream.
class Stream {
 public:
  Stream() { PGKM_CUDA_TRY(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking)); }
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
  ~Stream() { cudaStreamDestroy(stream_); }
  cudaStream_t get() const { return stream_; }
  void synchronize() const { PGKM_CUDA_TRY(cudaStreamSynchronize(stream_)); }

 private:
  cudaStream_t stream_ = nullptr;
};

// Device memory for n elements of T; grows, never shrinks. The invariant data_ == nullptr
// <=> capacity_ == 0 holds at every point where a call can throw.
template <typename T>
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  ~DeviceBuffer() {
    if (data_ != nullptr) cudaFree(data_);
  }

  // At least n elements. Growing waits for `stream` first: work queued on it may still
  // read the old memory.
  void reserve(size_t n, const Stream& stream) {
    if (n <= capacity_) return;
    if (data_ != nullptr) {
      stream.synchronize();
      T* old = data_;
      data_ = nullptr;
      capacity_ = 0;
      PGKM_CUDA_TRY(cudaFree(old));
    }
    T* fresh = nullptr;
    PGKM_CUDA_TRY(cudaMalloc(&fresh, std::max<size_t>(n, 1) * sizeof(T)));
    data_ = fresh;
    capacity_ = n;
  }
  T* data() const { return data_; }

 private:
  T* data_ = nullptr;
  size_t capacity_ = 0;
};

// Page-locked host memory for asynchronous copies; grows, never shrinks.
class PinnedBuffer {
 public:
  PinnedBuffer() = default;
  PinnedBuffer(const PinnedBuffer&) = delete;
  PinnedBuffer& operator=(const PinnedBuffer&) = delete;
  ~PinnedBuffer() {
    if (data_ != nullptr) cudaFreeHost(data_);
  }
  // At least `bytes`; the caller makes sure no copy from or to the old memory is queued.
  void reserve(size_t bytes) {
    if (bytes <= capacity_) return;
    if (data_ != nullptr) {
      void* old = data_;
      data_ = nullptr;
      capacity_ = 0;
      PGKM_CUDA_TRY(cudaFreeHost(old));
    }
    void* fresh = nullptr;
    PGKM_CUDA_TRY(cudaMallocHost(&fresh, std::max<size_t>(bytes, 1)));
    data_ = static_cast<unsigned char*>(fresh);
    capacity_ = bytes;
  }
  unsigned char* data() const { return data_; }
  size_t capacity() const { return capacity_; }

 private:
  unsigned char* data_ = nullptr;
  size_t capacity_ = 0;
};

}  // namespace pgkm::cuda
