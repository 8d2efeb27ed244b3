// The CUDA backend: the layer's points stay resident on the GPU for every pass, and one
// fused kernel assigns each point to its nearest centroid and adds it to that
// centroid's fixed-point sums.
//
// Arithmetic follows the contract in kernels/backend.h literally (the scalar CPU kernel,
// kernels/cpu/assign_scalar.cpp, is the reference): the same fmaf chains in the same
// order, strict > over centroids in ascending order, so codes and distances match the
// CPU backend bit for bit. Sums are 64-bit integers added with atomics: integer
// addition is associative, so block scheduling cannot change a bit.
//
// Never run on a GPU in the work that wrote it (no device was available): see
// tests/test_cuda_backend.cpp, which compares every entry point with the CPU backend.
#include <cuda_runtime.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "core/errors.h"
#include "core/gpu_check.h"
#include "kernels/backend.h"

namespace pgkm {
namespace {

// Owns n elements of device memory; grows, never shrinks.
template <typename T>
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  ~DeviceBuffer() {
    if (data_ != nullptr) cudaFree(data_);  // no-throw in a destructor
  }
  void reserve(size_t n) {
    if (n <= capacity_) return;
    if (data_ != nullptr) PGKM_CUDA_TRY(cudaFree(data_));
    data_ = nullptr;
    PGKM_CUDA_TRY(cudaMalloc(&data_, std::max<size_t>(n, 1) * sizeof(T)));
    capacity_ = n;
  }
  void upload(const T* host, size_t n) {
    reserve(n);
    PGKM_CUDA_TRY(cudaMemcpy(data_, host, n * sizeof(T), cudaMemcpyHostToDevice));
  }
  void download(T* host, size_t n) const {
    PGKM_CUDA_TRY(cudaMemcpy(host, data_, n * sizeof(T), cudaMemcpyDeviceToHost));
  }
  T* data() const { return data_; }

 private:
  T* data_ = nullptr;
  size_t capacity_ = 0;
};

class CudaResidentPoints final : public ResidentPoints {
 public:
  CudaResidentPoints(std::span<const float> points, std::span<const uint32_t> weights, int dim)
      : n_(static_cast<int64_t>(weights.size())), dim_(dim) {
    x_.upload(points.data(), points.size());
    w_.upload(weights.data(), weights.size());
  }
  int64_t size() const override { return n_; }
  int dim() const override { return dim_; }
  const float* x() const { return x_.data(); }
  const uint32_t* w() const { return w_.data(); }

 private:
  int64_t n_;
  int dim_;
  DeviceBuffer<float> x_;
  DeviceBuffer<uint32_t> w_;
};

constexpr int kThreads = 256;  // one point per thread
constexpr int kTile = 128;     // centroids staged in shared memory at a time

__global__ void half_norms_kernel(const float* c, int64_t k, int dim, float* half_norms) {
  const int64_t j = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (j >= k) return;
  float norm = 0.f;
  for (int d = 0; d < dim; ++d)
    norm = fmaf(c[j * dim + d], c[j * dim + d], norm);
  half_norms[j] = -0.5f * norm;
}

// Adds weight * round(x * scale) of one point to centroid `code`'s sums. Two's-complement
// addition through unsigned atomics gives the signed sum exactly.
template <int kDim>
__device__ void add_point(const float* xv, int dim, uint32_t code, uint32_t weight, double scale,
                          unsigned long long* sums, unsigned long long* counts) {
  const int d_end = kDim > 0 ? kDim : dim;
#pragma unroll
  for (int d = 0; d < d_end; ++d) {
    const long long q = __double2ll_rn(static_cast<double>(xv[d]) * scale);
    atomicAdd(sums + static_cast<int64_t>(code) * d_end + d,
              static_cast<unsigned long long>(q * static_cast<long long>(weight)));
  }
  atomicAdd(counts + code, static_cast<unsigned long long>(weight));
}

// kDim > 0: compile-time block size (4, 8, 16) so the point stays in registers; 0: any.
template <int kDim>
__global__ void assign_accumulate_kernel(const float* __restrict__ x,
                                         const uint32_t* __restrict__ w, int64_t n, int dim,
                                         const float* __restrict__ c,
                                         const float* __restrict__ half_norms, int64_t k,
                                         bool accumulate, double scale, uint32_t* codes,
                                         float* dist, unsigned long long* sums,
                                         unsigned long long* counts) {
  extern __shared__ float shared[];
  const int d_end = kDim > 0 ? kDim : dim;
  float* tile_c = shared;                  // [kTile, dim]
  float* tile_h = shared + kTile * d_end;  // [kTile]
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  const bool active = i < n;
  float xv[kDim > 0 ? kDim : kMaxBlockSize];
  if (active) {
    for (int d = 0; d < d_end; ++d)
      xv[d] = x[i * d_end + d];
  }
  float best = -INFINITY;
  uint32_t best_j = 0;
  for (int64_t first = 0; first < k; first += kTile) {
    const int count = static_cast<int>(k - first < kTile ? k - first : kTile);
    __syncthreads();  // the previous tile is no longer read
    for (int e = threadIdx.x; e < count * d_end; e += blockDim.x) {
      tile_c[e] = c[first * d_end + e];
    }
    for (int e = threadIdx.x; e < count; e += blockDim.x)
      tile_h[e] = half_norms[first + e];
    __syncthreads();
    if (!active) continue;
    for (int j = 0; j < count; ++j) {
      float acc = tile_h[j];
#pragma unroll
      for (int d = 0; d < d_end; ++d)
        acc = fmaf(xv[d], tile_c[j * d_end + d], acc);
      if (acc > best) {
        best = acc;
        best_j = static_cast<uint32_t>(first + j);
      }
    }
  }
  if (!active) return;
  codes[i] = best_j;
  float squared = 0.f;
  for (int d = 0; d < d_end; ++d) {
    const float t = xv[d] - c[static_cast<int64_t>(best_j) * d_end + d];
    squared = fmaf(t, t, squared);
  }
  dist[i] = squared;
  if (accumulate) add_point<kDim>(xv, dim, best_j, w[i], scale, sums, counts);
}

__global__ void accumulate_kernel(const float* __restrict__ x, const uint32_t* __restrict__ w,
                                  int64_t n, int dim, const uint32_t* __restrict__ codes,
                                  double scale, unsigned long long* sums,
                                  unsigned long long* counts) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i >= n) return;
  float xv[kMaxBlockSize];
  for (int d = 0; d < dim; ++d)
    xv[d] = x[i * dim + d];
  add_point<0>(xv, dim, codes[i], w[i], scale, sums, counts);
}

class CudaBackend final : public Backend {
 public:
  explicit CudaBackend(int device) : device_(device) {
    PGKM_CUDA_TRY(cudaSetDevice(device));
    cudaDeviceProp prop{};
    PGKM_CUDA_TRY(cudaGetDeviceProperties(&prop, device));
    name_ = str_cat("cuda:", device, " (", prop.name, ")");
  }

  std::string name() const override { return name_; }

  std::unique_ptr<ResidentPoints> upload(std::span<const float> points,
                                         std::span<const uint32_t> weights, int dim) override {
    PGKM_EXPECTS(dim >= 1 && dim <= kMaxBlockSize, "cuda backend", "dim ", dim, " outside 1..",
                 kMaxBlockSize);
    PGKM_EXPECTS(points.size() == weights.size() * static_cast<size_t>(dim), "cuda backend",
                 points.size(), " values for ", weights.size(), " points of dim ", dim);
    PGKM_CUDA_TRY(cudaSetDevice(device_));
    return std::make_unique<CudaResidentPoints>(points, weights, dim);
  }

  void assign(const ResidentPoints& points, std::span<const float> centroids,
              std::span<uint32_t> codes, std::span<float> dist) override {
    run(points, centroids, nullptr, codes, dist, {}, {});
  }

  void assign_accumulate(const ResidentPoints& points, std::span<const float> centroids,
                         const FixedPoint& fp, std::span<uint32_t> codes, std::span<float> dist,
                         std::span<int64_t> sums, std::span<uint64_t> counts) override {
    run(points, centroids, &fp, codes, dist, sums, counts);
  }

  void accumulate(const ResidentPoints& points, std::span<const uint32_t> codes,
                  const FixedPoint& fp, std::span<int64_t> sums,
                  std::span<uint64_t> counts) override {
    const auto& p = resident(points);
    const int64_t k = static_cast<int64_t>(counts.size());
    check_outputs(p, codes.size(), sums.size(), k);
    for (size_t i = 0; i < codes.size(); ++i) {
      PGKM_EXPECTS(codes[i] < k, "cuda backend", "code ", codes[i], " of point ", i,
                   " is not < k=", k);
    }
    codes_.upload(codes.data(), codes.size());
    clear_sums(sums.size(), counts.size());
    const unsigned blocks = static_cast<unsigned>((p.size() + kThreads - 1) / kThreads);
    if (p.size() > 0) {
      accumulate_kernel<<<blocks, kThreads>>>(p.x(), p.w(), p.size(), p.dim(), codes_.data(),
                                              fp.scale(), sums_.data(), counts_.data());
      PGKM_CUDA_TRY(cudaGetLastError());
    }
    fetch_sums(sums, counts);
  }

 private:
  static const CudaResidentPoints& resident(const ResidentPoints& points) {
    const auto* p = dynamic_cast<const CudaResidentPoints*>(&points);
    PGKM_ASSERT(p != nullptr, "points were not uploaded by the CUDA backend");
    return *p;
  }

  static void check_outputs(const CudaResidentPoints& p, size_t n_codes, size_t n_sums, int64_t k) {
    PGKM_EXPECTS(n_codes == static_cast<size_t>(p.size()), "cuda backend", n_codes, " codes for ",
                 p.size(), " points");
    PGKM_EXPECTS(n_sums == static_cast<size_t>(k) * static_cast<size_t>(p.dim()), "cuda backend",
                 "sums hold ", n_sums, " values, expected k=", k, " x dim=", p.dim());
  }

  void clear_sums(size_t n_sums, size_t k) {
    sums_.reserve(n_sums);
    counts_.reserve(k);
    PGKM_CUDA_TRY(cudaMemset(sums_.data(), 0, n_sums * sizeof(unsigned long long)));
    PGKM_CUDA_TRY(cudaMemset(counts_.data(), 0, k * sizeof(unsigned long long)));
  }

  void fetch_sums(std::span<int64_t> sums, std::span<uint64_t> counts) {
    PGKM_CUDA_TRY(cudaDeviceSynchronize());
    std::vector<unsigned long long> raw(sums.size());
    sums_.download(raw.data(), raw.size());
    for (size_t i = 0; i < raw.size(); ++i)
      std::memcpy(&sums[i], &raw[i], sizeof(int64_t));
    static_assert(sizeof(unsigned long long) == sizeof(uint64_t));
    counts_.download(reinterpret_cast<unsigned long long*>(counts.data()), counts.size());
  }

  // assign (fp == nullptr) or the fused assign + accumulate.
  void run(const ResidentPoints& points, std::span<const float> centroids, const FixedPoint* fp,
           std::span<uint32_t> codes, std::span<float> dist, std::span<int64_t> sums,
           std::span<uint64_t> counts) {
    const auto& p = resident(points);
    const int dim = p.dim();
    PGKM_EXPECTS(!centroids.empty() && centroids.size() % static_cast<size_t>(dim) == 0,
                 "cuda backend", centroids.size(), " centroid values for dim ", dim);
    const int64_t k = static_cast<int64_t>(centroids.size()) / dim;
    PGKM_EXPECTS(codes.size() == static_cast<size_t>(p.size()) && dist.size() == codes.size(),
                 "cuda backend", "codes and dist must hold ", p.size(), " points");
    if (fp != nullptr) check_outputs(p, codes.size(), sums.size(), k);
    PGKM_CUDA_TRY(cudaSetDevice(device_));
    centroids_.upload(centroids.data(), centroids.size());
    half_norms_.reserve(static_cast<size_t>(k));
    half_norms_kernel<<<static_cast<unsigned>((k + kThreads - 1) / kThreads), kThreads>>>(
        centroids_.data(), k, dim, half_norms_.data());
    PGKM_CUDA_TRY(cudaGetLastError());
    if (fp != nullptr) clear_sums(sums.size(), counts.size());
    codes_.reserve(codes.size());
    dist_.reserve(dist.size());
    if (p.size() > 0) launch(p, k, fp, dim);
    PGKM_CUDA_TRY(cudaDeviceSynchronize());
    codes_.download(codes.data(), codes.size());
    dist_.download(dist.data(), dist.size());
    if (fp != nullptr) fetch_sums(sums, counts);
  }

  void launch(const CudaResidentPoints& p, int64_t k, const FixedPoint* fp, int dim) {
    const unsigned blocks = static_cast<unsigned>((p.size() + kThreads - 1) / kThreads);
    const size_t shared = (static_cast<size_t>(kTile) * dim + kTile) * sizeof(float);
    const bool acc = fp != nullptr;
    const double scale = acc ? fp->scale() : 1.0;
    auto go = [&](auto kernel) {
      kernel<<<blocks, kThreads, shared>>>(p.x(), p.w(), p.size(), dim, centroids_.data(),
                                           half_norms_.data(), k, acc, scale, codes_.data(),
                                           dist_.data(), sums_.data(), counts_.data());
    };
    switch (dim) {
      case 4:
        go(assign_accumulate_kernel<4>);
        break;
      case 8:
        go(assign_accumulate_kernel<8>);
        break;
      case 16:
        go(assign_accumulate_kernel<16>);
        break;
      default:
        go(assign_accumulate_kernel<0>);
        break;
    }
    PGKM_CUDA_TRY(cudaGetLastError());
  }

  int device_;
  std::string name_;
  DeviceBuffer<float> centroids_;
  DeviceBuffer<float> half_norms_;
  DeviceBuffer<uint32_t> codes_;
  DeviceBuffer<float> dist_;
  DeviceBuffer<unsigned long long> sums_;
  DeviceBuffer<unsigned long long> counts_;
};

}  // namespace

bool cuda_backend_built() {
  return true;
}

int cuda_device_count() {
  int count = 0;
  return cudaGetDeviceCount(&count) == cudaSuccess ? count : 0;
}

std::unique_ptr<Backend> make_cuda_backend(int device) {
  const int count = cuda_device_count();
  if (device < 0 || device >= count) {
    throw SystemError(
        str_cat("CUDA device ", device, " requested but ", count, " device(s) are visible"));
  }
  return std::make_unique<CudaBackend>(device);
}

}  // namespace pgkm
