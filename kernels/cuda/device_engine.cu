// The device half of the CUDA backend (device_engine.h): resident buffers, the
// backend's own stream, pinned staging for every host copy, and the kernel sequence of
// each step. Every call selects the device first; only upload and download wait for
// the stream, so a backend call costs one synchronisation.
//
// Never run on a GPU by the work that wrote it (no device was available): see
// bench/gpu/check.sh for the checks that need one.
#include <cuda_runtime.h>

#include <array>
#include <cstring>
#include <memory>
#include <string>

#include "core/errors.h"
#include "core/gpu_check.h"
#include "kernels/cuda/device_engine.h"
#include "kernels/cuda/device_memory.h"
#include "kernels/cuda/kernels.h"

namespace pgkm::cuda {
namespace {

// Points [n, dim] and weights [n] resident on one engine's device.
class DevicePoints final : public ResidentPoints {
 public:
  DevicePoints(const void* owner, std::span<const float> points, std::span<const uint32_t> weights,
               int dim, const Stream& stream)
      : owner_(owner), n_(static_cast<int64_t>(weights.size())), dim_(dim) {
    x_.reserve(points.size(), stream);
    w_.reserve(weights.size(), stream);
    if (n_ > 0) {
      PGKM_CUDA_TRY(cudaMemcpyAsync(x_.data(), points.data(), points.size_bytes(),
                                    cudaMemcpyHostToDevice, stream.get()));
      PGKM_CUDA_TRY(cudaMemcpyAsync(w_.data(), weights.data(), weights.size_bytes(),
                                    cudaMemcpyHostToDevice, stream.get()));
    }
    stream.synchronize();  // the caller's memory may go away when upload returns
  }
  int64_t size() const override { return n_; }
  int dim() const override { return dim_; }
  const void* owner() const { return owner_; }
  const float* x() const { return x_.data(); }
  const uint32_t* w() const { return w_.data(); }

 private:
  const void* owner_;
  int64_t n_;
  int dim_;
  DeviceBuffer<float> x_;
  DeviceBuffer<uint32_t> w_;
};

size_t align_up(size_t bytes) {
  return (bytes + 63) / 64 * 64;
}

class CudaDeviceEngine final : public DeviceEngine {
 public:
  explicit CudaDeviceEngine(int device) : device_(device) {
    PGKM_CUDA_TRY(cudaSetDevice(device_));
    cudaDeviceProp prop{};
    PGKM_CUDA_TRY(cudaGetDeviceProperties(&prop, device_));
    name_ = str_cat("cuda:", device_, " (", prop.name, ")");
    sms_ = prop.multiProcessorCount;
    shared_optin_ = prop.sharedMemPerBlockOptin;
    stream_ = std::make_unique<Stream>();
  }
  CudaDeviceEngine(const CudaDeviceEngine&) = delete;
  CudaDeviceEngine& operator=(const CudaDeviceEngine&) = delete;
  ~CudaDeviceEngine() override {
    // Queued work may still use the buffers freed next; errors cannot be thrown here.
    if (cudaSetDevice(device_) == cudaSuccess) cudaStreamSynchronize(stream_->get());
  }

  std::string name() const override { return name_; }
  CudaStreamHandle stream() const override { return {stream_->get(), device_}; }

  bool owns(const ResidentPoints& points) const override {
    const auto* p = dynamic_cast<const DevicePoints*>(&points);
    return p != nullptr && p->owner() == this;
  }

  std::unique_ptr<ResidentPoints> upload(std::span<const float> points,
                                         std::span<const uint32_t> weights, int dim) override {
    select_device();
    return std::make_unique<DevicePoints>(this, points, weights, dim, *stream_);
  }

  void set_centroids(std::span<const float> centroids, int dim) override {
    select_device();
    k_ = static_cast<int64_t>(centroids.size()) / dim;
    dim_ = dim;
    padded_k_ = padded_centroids(k_, dim);
    centroids_.reserve(centroids.size(), *stream_);
    padded_.reserve(static_cast<size_t>(padded_k_ * padded_dim(dim)), *stream_);
    half_norms_.reserve(static_cast<size_t>(padded_k_), *stream_);
    unsigned char* staged = staging_for_host_writes(centroids.size_bytes());
    std::memcpy(staged, centroids.data(), centroids.size_bytes());
    PGKM_CUDA_TRY(cudaMemcpyAsync(centroids_.data(), staged, centroids.size_bytes(),
                                  cudaMemcpyHostToDevice, stream_->get()));
    staging_queued_ = true;
    prepare_centroids();
  }

  void set_codes(std::span<const uint32_t> codes) override {
    select_device();
    codes_.reserve(codes.size(), *stream_);
    if (codes.empty()) return;
    unsigned char* staged = staging_for_host_writes(codes.size_bytes());
    std::memcpy(staged, codes.data(), codes.size_bytes());
    PGKM_CUDA_TRY(cudaMemcpyAsync(codes_.data(), staged, codes.size_bytes(), cudaMemcpyHostToDevice,
                                  stream_->get()));
    staging_queued_ = true;
  }

  void assign(const ResidentPoints& points, bool with_dist, const FixedPoint* fp) override {
    select_device();
    const auto& p = dynamic_cast<const DevicePoints&>(points);
    const int64_t n = p.size();
    const size_t un = static_cast<size_t>(n);
    codes_.reserve(un, *stream_);
    keys_.reserve(un, *stream_);
    if (with_dist) dist_.reserve(un, *stream_);
    if (fp != nullptr) clear_sums(k_, dim_);
    if (n == 0) return;
    AssignArgs args;
    args.x = p.x();
    args.n = n;
    args.padded = padded_.data();
    args.half_norms = half_norms_.data();
    args.k = static_cast<uint32_t>(k_);
    args.plan = plan(n, dim_);
    args.keys = keys_.data();
    PGKM_ASSERT(args.plan.padded_k == padded_k_);
    if (args.plan.splits > 1) {
      PGKM_CUDA_TRY(
          cudaMemsetAsync(keys_.data(), 0, un * sizeof(unsigned long long), stream_->get()));
    }
    launch_assign(dim_, args, stream_->get());
    launch_decode(keys_.data(), n, dim_, p.x(), centroids_.data(), codes_.data(),
                  with_dist ? dist_.data() : nullptr, stream_->get());
    if (fp != nullptr) accumulate_codes(p, k_, *fp);
  }

  void accumulate(const ResidentPoints& points, int64_t k, const FixedPoint& fp) override {
    select_device();
    const auto& p = dynamic_cast<const DevicePoints&>(points);
    clear_sums(k, p.dim());
    accumulate_codes(p, k, fp);
  }

  void update_means(const FixedPoint& fp) override {
    select_device();
    launch_update_means(sums_.data(), counts_.data(), k_, dim_, fp.scale(), centroids_.data(),
                        stream_->get());
    prepare_centroids();
  }

  void objective_chunks(const ResidentPoints& points) override {
    select_device();
    const auto& p = dynamic_cast<const DevicePoints&>(points);
    const int64_t chunks = (p.size() + kObjectiveChunk - 1) / kObjectiveChunk;
    partials_.reserve(static_cast<size_t>(chunks), *stream_);
    launch_objective_chunks(p.x(), p.w(), p.size(), p.dim(), codes_.data(), centroids_.data(),
                            partials_.data(), stream_->get());
  }

  void download(const EngineDownload& out) override;

  CudaResidentSums resident_sums(int64_t k, int dim) const override {
    return {sums_.data(), counts_.data(), k, dim};
  }

 private:
  void select_device() const { PGKM_CUDA_TRY(cudaSetDevice(device_)); }

  // Staging memory the host may write now: waits for queued copies that read it.
  unsigned char* staging_for_host_writes(size_t bytes) {
    if (staging_queued_) {
      stream_->synchronize();
      staging_queued_ = false;
    }
    staging_.reserve(bytes);
    return staging_.data();
  }

  void prepare_centroids() {
    launch_prepare_centroids(centroids_.data(), k_, dim_, padded_k_, padded_.data(),
                             half_norms_.data(), stream_->get());
  }

  void clear_sums(int64_t k, int dim) {
    const size_t values = static_cast<size_t>(k) * static_cast<size_t>(dim);
    sums_.reserve(values, *stream_);
    counts_.reserve(static_cast<size_t>(k), *stream_);
    PGKM_CUDA_TRY(
        cudaMemsetAsync(sums_.data(), 0, values * sizeof(unsigned long long), stream_->get()));
    PGKM_CUDA_TRY(cudaMemsetAsync(
        counts_.data(), 0, static_cast<size_t>(k) * sizeof(unsigned long long), stream_->get()));
  }

  void accumulate_codes(const DevicePoints& p, int64_t k, const FixedPoint& fp) {
    const AccumulateArgs args{p.x(), p.w(),      p.size(),     codes_.data(),
                              k,     fp.scale(), sums_.data(), counts_.data()};
    launch_accumulate(p.dim(), args, sms_, shared_optin_, stream_->get());
  }

  AssignPlan plan(int64_t n, int dim) {
    int& per_sm = assign_blocks_per_sm_[static_cast<size_t>(dim)];
    if (per_sm == 0) per_sm = assign_blocks_per_sm(dim);
    if (per_sm == 0) {
      throw SystemError(str_cat("the assignment kernel for dim ", dim, " cannot run on ", name_));
    }
    return plan_assign(n, k_, dim, sms_);
  }

  int device_;
  std::string name_;
  int sms_ = 0;
  size_t shared_optin_ = 0;
  std::unique_ptr<Stream> stream_;  // declared before the buffers: destroyed after them
  PinnedBuffer staging_;
  bool staging_queued_ = false;     // a copy that reads staging_ may still be queued
  DeviceBuffer<float> centroids_;   // [k_, dim_]
  DeviceBuffer<float> padded_;      // [padded_k_, padded_dim(dim_)]
  DeviceBuffer<float> half_norms_;  // [padded_k_]
  DeviceBuffer<unsigned long long> keys_;
  DeviceBuffer<uint32_t> codes_;
  DeviceBuffer<float> dist_;
  DeviceBuffer<unsigned long long> sums_;
  DeviceBuffer<unsigned long long> counts_;
  DeviceBuffer<double> partials_;
  int64_t k_ = 0;
  int dim_ = 0;
  int64_t padded_k_ = 0;
  std::array<int, 33> assign_blocks_per_sm_{};  // by dim, 0 until asked
};

void CudaDeviceEngine::download(const EngineDownload& out) {
  select_device();
  struct Copy {
    const void* device;
    void* host;
    size_t bytes;
    size_t offset;
  };
  static_assert(sizeof(unsigned long long) == sizeof(int64_t));
  std::array<Copy, 6> copies{{
      {codes_.data(), out.codes.data(), out.codes.size_bytes(), 0},
      {dist_.data(), out.dist.data(), out.dist.size_bytes(), 0},
      {sums_.data(), out.sums.data(), out.sums.size_bytes(), 0},
      {counts_.data(), out.counts.data(), out.counts.size_bytes(), 0},
      {centroids_.data(), out.centroids.data(), out.centroids.size_bytes(), 0},
      {partials_.data(), out.partials.data(), out.partials.size_bytes(), 0},
  }};
  size_t total = 0;
  for (Copy& c : copies) {
    c.offset = total;
    total += align_up(c.bytes);
  }
  // Copies queued earlier on the stream (centroids or codes read from staging) run
  // before these write it, so the host waits only when staging must be reallocated.
  if (staging_queued_ && total > staging_.capacity()) {
    stream_->synchronize();
    staging_queued_ = false;
  }
  staging_.reserve(total);
  for (const Copy& c : copies) {
    if (c.bytes == 0) continue;
    PGKM_CUDA_TRY(cudaMemcpyAsync(staging_.data() + c.offset, c.device, c.bytes,
                                  cudaMemcpyDeviceToHost, stream_->get()));
  }
  stream_->synchronize();
  staging_queued_ = false;
  for (const Copy& c : copies) {
    if (c.bytes != 0) std::memcpy(c.host, staging_.data() + c.offset, c.bytes);
  }
}

}  // namespace
}  // namespace pgkm::cuda

namespace pgkm {

CudaDeviceStatus cuda_device_status() {
  int count = 0;
  const cudaError_t status = cudaGetDeviceCount(&count);
  if (status == cudaSuccess) return {count, ""};
  cudaGetLastError();  // not sticky: clear it for the calls that follow
  return {0, str_cat(cudaGetErrorName(status), ": ", cudaGetErrorString(status))};
}

bool cuda_backend_built() {
  return true;
}

int cuda_device_count() {
  return cuda_device_status().count;
}

std::unique_ptr<Backend> make_cuda_backend(int device) {
  const CudaDeviceStatus status = cuda_device_status();
  if (!status.error.empty()) {
    throw SystemError(
        str_cat("CUDA device ", device,
                " requested but the CUDA runtime cannot list devices: ", status.error));
  }
  if (device < 0 || device >= status.count) {
    throw SystemError(
        str_cat("CUDA device ", device, " requested but ", status.count, " device(s) are visible"));
  }
  return cuda::make_cuda_backend_on(std::make_unique<cuda::CudaDeviceEngine>(device));
}

}  // namespace pgkm
