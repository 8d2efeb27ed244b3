// Internal to kernels/cuda: launchers of the CUDA backend's kernels, plain functions with
// the stream last (CONVENTIONS.md #3); the kernel templates stay in the .cu files. Each
// launcher checks the launch with cudaGetLastError and throws SystemError.
//
// Layouts: points x [n, dim] and centroids [k, dim] row-major float; padded centroids
// [padded_k, padded_dim(dim)] with half norms [padded_k] (assign_plan.h); sums
// [k, dim] and counts [k] as unsigned 64-bit words (two's complement for the sums).
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "kernels/cuda/assign_plan.h"

namespace pgkm::cuda {

struct AssignArgs {
  const float* x = nullptr;            // [n, dim] device
  int64_t n = 0;                       // >= 1
  const float* padded = nullptr;       // [plan.padded_k, padded_dim(dim)] device
  const float* half_norms = nullptr;   // [plan.padded_k] device, -inf past k
  uint32_t k = 0;                      // real centroids
  AssignPlan plan;                     // from plan_assign(n, k, dim, ...)
  unsigned long long* keys = nullptr;  // [n] device: (ordered score << 32) | ~code; zero
                                       // before the launch when plan.splits > 1
};

// Blocks of the assignment kernel for dimension dim that fit on one SM.
int assign_blocks_per_sm(int dim);
void launch_assign(int dim, const AssignArgs& args, cudaStream_t stream);

// padded rows and half norms (-0.5f * fmaf chain of c^2) of centroids [k, dim].
void launch_prepare_centroids(const float* centroids, int64_t k, int dim, int64_t padded_k,
                              float* padded, float* half_norms, cudaStream_t stream);

// codes[i] = the code in keys[i]; with dist != nullptr also the contract's distance
// to centroids[code].
void launch_decode(const unsigned long long* keys, int64_t n, int dim, const float* x,
                   const float* centroids, uint32_t* codes, float* dist, cudaStream_t stream);

struct AccumulateArgs {
  const float* x = nullptr;     // [n, dim] device
  const uint32_t* w = nullptr;  // [n] device weights
  int64_t n = 0;
  const uint32_t* codes = nullptr;  // [n] device, each < k
  int64_t k = 0;
  double scale = 1.0;                    // FixedPoint::scale()
  unsigned long long* sums = nullptr;    // [k, dim] device, zero before the launch
  unsigned long long* counts = nullptr;  // [k] device, zero before the launch
};

// Adds weight * round(x * scale) into sums and weight into counts. Per-block bins in
// shared memory when they fit in `shared_limit` bytes and each of the `sms` blocks has
// enough points to fill them; direct global atomics otherwise.
void launch_accumulate(int dim, const AccumulateArgs& args, int sms, size_t shared_limit,
                       cudaStream_t stream);

// centroids[j] = float(double(sum) / scale / double(count)) where counts[j] != 0.
void launch_update_means(const unsigned long long* sums, const unsigned long long* counts,
                         int64_t k, int dim, double scale, float* centroids, cudaStream_t stream);

// partials[c] = sum over the points of chunk c (kObjectiveChunk points) in order of
// w * sum_d (double(x_d) - double(c_d))^2.
void launch_objective_chunks(const float* x, const uint32_t* w, int64_t n, int dim,
                             const uint32_t* codes, const float* centroids, double* partials,
                             cudaStream_t stream);

}  // namespace pgkm::cuda
