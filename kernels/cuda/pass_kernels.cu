// The CUDA backend's kernels other than the assignment: centroid preparation, code
// decoding, fixed-point accumulation, the means and the objective. Each follows the CPU
// code it must match bit for bit (named at each kernel); nvcc runs with --fmad=false
// -ftz=false -prec-div=true, so every + - * / rounds once, as on the CPU.
#include <cuda_runtime.h>

#include <array>
#include <cmath>
#include <utility>

#include "core/gpu_check.h"
#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/kernels.h"

namespace pgkm::cuda {
namespace {

constexpr int kThreads = 256;
// Threads of a block of the shared-memory accumulation: one block per SM holds the bins.
constexpr int kBinThreads = 512;

unsigned blocks_for(int64_t items, int threads) {
  return static_cast<unsigned>((items + threads - 1) / threads);
}

__device__ __forceinline__ int64_t global_index() {
  return static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
}

// kernels/cpu/cpu_backend.cpp prepare_centroids: norm = fmaf chain of c_d^2 from 0,
// half norm = -0.5f * norm; padding rows are zero with half norm -inf (never win).
__global__ void prepare_kernel(const float* __restrict__ c, int64_t k, int dim, int64_t padded_k,
                               int stride, float* __restrict__ padded,
                               float* __restrict__ half_norms) {
  const int64_t j = global_index();
  if (j >= padded_k) return;
  float* row = padded + j * stride;
  if (j >= k) {
    for (int d = 0; d < stride; ++d)
      row[d] = 0.f;
    half_norms[j] = -INFINITY;
    return;
  }
  float norm = 0.f;
  for (int d = 0; d < dim; ++d) {
    const float v = c[j * dim + d];
    norm = fmaf(v, v, norm);
    row[d] = v;
  }
  for (int d = dim; d < stride; ++d)
    row[d] = 0.f;
  half_norms[j] = -0.5f * norm;
}

// kernels/cpu/assign_scalar.cpp squared_distance: t = x - c, acc = fmaf(t, t, acc).
__global__ void decode_kernel(const unsigned long long* __restrict__ keys, int64_t n, int dim,
                              const float* __restrict__ x, const float* __restrict__ centroids,
                              uint32_t* __restrict__ codes, float* __restrict__ dist) {
  const int64_t i = global_index();
  if (i >= n) return;
  const uint32_t code = merged_index(keys[i]);
  codes[i] = code;
  if (dist == nullptr) return;
  const float* c = centroids + static_cast<int64_t>(code) * dim;
  float acc = 0.f;
  for (int d = 0; d < dim; ++d) {
    const float t = x[i * dim + d] - c[d];
    acc = fmaf(t, t, acc);
  }
  dist[i] = acc;
}

// FixedPoint::quantize: llrint(double(x) * scale), round half to even; the product is
// exact. Weighted as in cpu_backend.cpp accumulate_tiles: w * q in 64-bit integers.
__device__ __forceinline__ unsigned long long weighted_quantum(float x, double scale,
                                                               long long weight) {
  const long long q = __double2ll_rn(static_cast<double>(x) * scale);
  return static_cast<unsigned long long>(q * weight);
}

// One point per thread, straight into the global sums: for few points per centroid.
template <int B>
__global__ void accumulate_global_kernel(AccumulateArgs a) {
  const int64_t i = global_index();
  if (i >= a.n) return;
  const uint32_t code = a.codes[i];
  const long long weight = a.w[i];
  unsigned long long* row = a.sums + static_cast<int64_t>(code) * B;
  float x[B];
#pragma unroll
  for (int d = 0; d < B; ++d)
    x[d] = a.x[i * B + d];
#pragma unroll
  for (int d = 0; d < B; ++d)
    atomicAdd(row + d, weighted_quantum(x[d], a.scale, weight));
  atomicAdd(a.counts + code, static_cast<unsigned long long>(weight));
}

// Per-block bins [k, B] sums then [k] counts in shared memory, flushed once per block:
// one global atomic per non-zero bin instead of one per point and coordinate.
template <int B>
__global__ void __launch_bounds__(kBinThreads) accumulate_shared_kernel(AccumulateArgs a) {
  extern __shared__ unsigned long long bins[];
  const int64_t sum_bins = a.k * B;
  const int64_t all_bins = sum_bins + a.k;
  for (int64_t e = threadIdx.x; e < all_bins; e += blockDim.x)
    bins[e] = 0;
  __syncthreads();
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = global_index(); i < a.n; i += stride) {
    const uint32_t code = a.codes[i];
    const long long weight = a.w[i];
    float x[B];
#pragma unroll
    for (int d = 0; d < B; ++d)
      x[d] = a.x[i * B + d];
#pragma unroll
    for (int d = 0; d < B; ++d)
      atomicAdd(bins + static_cast<int64_t>(code) * B + d, weighted_quantum(x[d], a.scale, weight));
    atomicAdd(bins + sum_bins + code, static_cast<unsigned long long>(weight));
  }
  __syncthreads();
  for (int64_t e = threadIdx.x; e < all_bins; e += blockDim.x) {
    const unsigned long long v = bins[e];
    if (v == 0) continue;
    atomicAdd(e < sum_bins ? a.sums + e : a.counts + (e - sum_bins), v);
  }
}

// ClusterState::update_means with FixedPoint::mean:
// float(double(sum) / scale / double(count)), every step correctly rounded.
__global__ void update_means_kernel(const unsigned long long* __restrict__ sums,
                                    const unsigned long long* __restrict__ counts, int64_t k,
                                    int dim, double scale, float* __restrict__ centroids) {
  const int64_t e = global_index();
  if (e >= k * dim) return;
  const unsigned long long count = counts[e / dim];
  if (count == 0) return;
  const double sum = __ll2double_rn(static_cast<long long>(sums[e]));
  centroids[e] = __double2float_rn(__ddiv_rn(__ddiv_rn(sum, scale), __ull2double_rn(count)));
}

// engine/kmeans.cpp objective_of: per point e = sum_d (double(x) - double(c))^2 added in
// coordinate order, the term e * weight, terms added in point order within a chunk.
// The threads compute the terms; one thread adds them in order.
__global__ void objective_kernel(const float* __restrict__ x, const uint32_t* __restrict__ w,
                                 int64_t n, int dim, const uint32_t* __restrict__ codes,
                                 const float* __restrict__ centroids,
                                 double* __restrict__ partials) {
  __shared__ double terms[kObjectiveChunk];
  const int64_t first = static_cast<int64_t>(blockIdx.x) * kObjectiveChunk;
  const int count = static_cast<int>(n - first < kObjectiveChunk ? n - first : kObjectiveChunk);
  for (int t = threadIdx.x; t < count; t += blockDim.x) {
    const int64_t i = first + t;
    const float* xi = x + i * dim;
    const float* m = centroids + static_cast<int64_t>(codes[i]) * dim;
    double e = 0;
    for (int d = 0; d < dim; ++d) {
      const double u = static_cast<double>(xi[d]) - static_cast<double>(m[d]);
      e = __dadd_rn(e, __dmul_rn(u, u));
    }
    terms[t] = __dmul_rn(e, static_cast<double>(w[i]));
  }
  __syncthreads();
  if (threadIdx.x != 0) return;
  double s = 0;
  for (int t = 0; t < count; ++t)
    s = __dadd_rn(s, terms[t]);
  partials[blockIdx.x] = s;
}

using AccumulateLauncher = void (*)(const AccumulateArgs&, int, size_t, cudaStream_t);

template <int B>
void launch_accumulate_b(const AccumulateArgs& a, int sms, size_t shared_limit,
                         cudaStream_t stream) {
  const size_t bytes = static_cast<size_t>(a.k) * (B + 1) * sizeof(unsigned long long);
  const int64_t grid = sms;
  // Bins pay off when each block has at least twice as many points as centroids: the
  // flush then costs at most half the atomics the direct kernel would issue.
  if (bytes <= shared_limit && a.n >= 2 * a.k * grid) {
    PGKM_CUDA_TRY(cudaFuncSetAttribute(accumulate_shared_kernel<B>,
                                       cudaFuncAttributeMaxDynamicSharedMemorySize,
                                       static_cast<int>(bytes)));
    accumulate_shared_kernel<B><<<static_cast<unsigned>(grid), kBinThreads, bytes, stream>>>(a);
  } else {
    accumulate_global_kernel<B><<<blocks_for(a.n, kThreads), kThreads, 0, stream>>>(a);
  }
}

template <int... I>
constexpr std::array<AccumulateLauncher, sizeof...(I)> accumulate_launchers(
    std::integer_sequence<int, I...>) {
  return {&launch_accumulate_b<I + 1>...};
}
constexpr auto kAccumulate = accumulate_launchers(std::make_integer_sequence<int, 32>{});

}  // namespace

void launch_prepare_centroids(const float* centroids, int64_t k, int dim, int64_t padded_k,
                              float* padded, float* half_norms, cudaStream_t stream) {
  prepare_kernel<<<blocks_for(padded_k, kThreads), kThreads, 0, stream>>>(
      centroids, k, dim, padded_k, padded_dim(dim), padded, half_norms);
  PGKM_CUDA_TRY(cudaGetLastError());
}

void launch_decode(const unsigned long long* keys, int64_t n, int dim, const float* x,
                   const float* centroids, uint32_t* codes, float* dist, cudaStream_t stream) {
  if (n == 0) return;
  decode_kernel<<<blocks_for(n, kThreads), kThreads, 0, stream>>>(keys, n, dim, x, centroids, codes,
                                                                  dist);
  PGKM_CUDA_TRY(cudaGetLastError());
}

void launch_accumulate(int dim, const AccumulateArgs& args, int sms, size_t shared_limit,
                       cudaStream_t stream) {
  if (args.n == 0) return;
  kAccumulate.at(static_cast<size_t>(dim - 1))(args, sms, shared_limit, stream);
  PGKM_CUDA_TRY(cudaGetLastError());
}

void launch_update_means(const unsigned long long* sums, const unsigned long long* counts,
                         int64_t k, int dim, double scale, float* centroids, cudaStream_t stream) {
  update_means_kernel<<<blocks_for(k * dim, kThreads), kThreads, 0, stream>>>(sums, counts, k, dim,
                                                                              scale, centroids);
  PGKM_CUDA_TRY(cudaGetLastError());
}

void launch_objective_chunks(const float* x, const uint32_t* w, int64_t n, int dim,
                             const uint32_t* codes, const float* centroids, double* partials,
                             cudaStream_t stream) {
  if (n == 0) return;
  objective_kernel<<<blocks_for(n, kObjectiveChunk), kThreads, 0, stream>>>(x, w, n, dim, codes,
                                                                            centroids, partials);
  PGKM_CUDA_TRY(cudaGetLastError());
}

}  // namespace pgkm::cuda
