// The assignment kernel: nearest centroid of every point under the arithmetic contract
// of kernels/backend.h, bit for bit the CPU backend's codes.
//
// Register tiling: each thread keeps points_per_thread(b) points in registers and
// scores a group of group_size(b) centroids at a time; every centroid coordinate is one
// broadcast shared-memory load (16 bytes, four coordinates) feeding one FMA per point.
// Per group and point only the group's maximum is compared with the running best
// (strict >, groups in ascending order), so the compare costs little next to the FMAs.
// When the split is done, each point's winning group is scored again with the identical
// fmaf chains, and the lowest index whose score equals the best is the code: the same
// lowest-index tie rule as the scalar reference (kernels/cpu/assign_scalar.cpp).
//
// Centroid tiles are double buffered: cp.async copies tile t + 1 into one shared buffer
// while the block scores tile t from the other. When there are too few points to fill
// the GPU, the centroids are split over gridDim.y blocks and the per-split winners merge
// with one 64-bit atomicMax on (order-preserving score bits << 32 | ~index): a higher
// score wins, and among equal scores the lower index (the higher ~index).
#include <cuda_pipeline_primitives.h>
#include <cuda_runtime.h>

#include <array>
#include <utility>

#include "core/gpu_check.h"
#include "kernels/cuda/kernels.h"

namespace pgkm::cuda {
namespace {

// Queues cp.async copies of the tile of centroids starting at `first` into shared memory.
template <int B>
__device__ __forceinline__ void load_tile(const float* __restrict__ padded,
                                          const float* __restrict__ half_norms, int64_t first,
                                          float* tile_c, float* tile_h) {
  constexpr int kT = tile_centroids(B);
  constexpr int kB4 = padded_dim(B);
  const float* src_c = padded + first * kB4;
  const float* src_h = half_norms + first;
#pragma unroll
  for (int e = threadIdx.x; e < kT * kB4 / 4; e += kAssignThreads)
    __pipeline_memcpy_async(tile_c + 4 * e, src_c + 4 * e, 16);
  for (int e = threadIdx.x; e < kT / 4; e += kAssignThreads)
    __pipeline_memcpy_async(tile_h + 4 * e, src_h + 4 * e, 16);
}

// Scores the group of centroids at c (rows of padded_dim(B) floats) with half norms h
// against the thread's points, and keeps the first group with the highest maximum.
template <int B>
__device__ __forceinline__ void score_group(const float (&x)[points_per_thread(B)][B],
                                            const float* __restrict__ c,
                                            const float* __restrict__ h, uint32_t group_first,
                                            float (&best)[points_per_thread(B)],
                                            uint32_t (&best_group)[points_per_thread(B)]) {
  constexpr int kP = points_per_thread(B);
  constexpr int kG = group_size(B);
  constexpr int kB4 = padded_dim(B);
  float acc[kP][kG];
#pragma unroll
  for (int g = 0; g < kG; g += 4) {
    const float4 hv = *reinterpret_cast<const float4*>(h + g);
#pragma unroll
    for (int p = 0; p < kP; ++p) {
      acc[p][g] = hv.x;
      acc[p][g + 1] = hv.y;
      acc[p][g + 2] = hv.z;
      acc[p][g + 3] = hv.w;
    }
  }
#pragma unroll
  for (int g = 0; g < kG; ++g) {
#pragma unroll
    for (int d = 0; d < kB4; d += 4) {
      const float4 cv = *reinterpret_cast<const float4*>(c + g * kB4 + d);
      const float cc[4] = {cv.x, cv.y, cv.z, cv.w};
#pragma unroll
      for (int q = 0; q < 4; ++q) {
        if (d + q < B) {
#pragma unroll
          for (int p = 0; p < kP; ++p)
            acc[p][g] = fmaf(x[p][d + q], cc[q], acc[p][g]);
        }
      }
    }
  }
#pragma unroll
  for (int p = 0; p < kP; ++p) {
    static_assert(kG == 4 || kG == 8 || kG == 16);
    if constexpr (kG == 16) {
#pragma unroll
      for (int g = 0; g < 8; ++g)
        acc[p][g] = fmaxf(acc[p][g], acc[p][g + 8]);
    }
    if constexpr (kG >= 8) {
#pragma unroll
      for (int g = 0; g < 4; ++g)
        acc[p][g] = fmaxf(acc[p][g], acc[p][g + 4]);
    }
    acc[p][0] = fmaxf(acc[p][0], acc[p][2]);
    acc[p][1] = fmaxf(acc[p][1], acc[p][3]);
    acc[p][0] = fmaxf(acc[p][0], acc[p][1]);
    if (acc[p][0] > best[p]) {
      best[p] = acc[p][0];
      best_group[p] = group_first;
    }
  }
}

// Lowest index j in [j0, j0 + group) below k whose score equals `best`; j0 when none
// does (only possible for NaN scores, which finite input never gives).
template <int B>
__device__ __forceinline__ uint32_t rescore(const float (&x)[B], const float* __restrict__ padded,
                                            const float* __restrict__ half_norms, uint32_t j0,
                                            uint32_t k, float best) {
  constexpr int kB4 = padded_dim(B);
  uint32_t win = j0;
#pragma unroll 1
  for (int g = group_size(B) - 1; g >= 0; --g) {
    const uint32_t j = j0 + static_cast<uint32_t>(g);
    const float* row = padded + static_cast<int64_t>(j) * kB4;
    float acc = __ldg(half_norms + j);
#pragma unroll
    for (int d = 0; d < kB4; d += 4) {
      const float4 cv = __ldg(reinterpret_cast<const float4*>(row + d));
      const float cc[4] = {cv.x, cv.y, cv.z, cv.w};
#pragma unroll
      for (int q = 0; q < 4; ++q) {
        if (d + q < B) acc = fmaf(x[d + q], cc[q], acc);
      }
    }
    if (acc == best && j < k) win = j;
  }
  return win;
}

// Block (bx, by): points [bx * points_per_block, +points_per_block) against the
// centroids [by * split, min((by + 1) * split, padded_k)), a whole number of tiles.
template <int B>
__global__ void __launch_bounds__(kAssignThreads, 2)
    assign_kernel(const float* __restrict__ x, int64_t n, const float* __restrict__ padded,
                  const float* __restrict__ half_norms, uint32_t k, int64_t split_centroids,
                  int64_t padded_k, bool merge, unsigned long long* __restrict__ keys) {
  constexpr int kP = points_per_thread(B);
  constexpr int kG = group_size(B);
  constexpr int kT = tile_centroids(B);
  constexpr int kB4 = padded_dim(B);
  __shared__ __align__(16) float tile_c[2][kT * kB4];
  __shared__ __align__(16) float tile_h[2][kT];

  const int64_t first_point =
      static_cast<int64_t>(blockIdx.x) * points_per_block(B) + static_cast<int64_t>(threadIdx.x);
  float xr[kP][B];
#pragma unroll
  for (int p = 0; p < kP; ++p) {
    const int64_t i = first_point + static_cast<int64_t>(p) * kAssignThreads;
#pragma unroll
    for (int d = 0; d < B; ++d)
      xr[p][d] = i < n ? x[i * B + d] : 0.f;
  }

  const int64_t c_begin = static_cast<int64_t>(blockIdx.y) * split_centroids;
  const int64_t c_end = c_begin + split_centroids < padded_k ? c_begin + split_centroids : padded_k;
  const int tiles = static_cast<int>((c_end - c_begin) / kT);
  float best[kP];
  uint32_t best_group[kP];
#pragma unroll
  for (int p = 0; p < kP; ++p) {
    best[p] = -INFINITY;
    best_group[p] = static_cast<uint32_t>(c_begin);
  }

  if (tiles > 0) load_tile<B>(padded, half_norms, c_begin, tile_c[0], tile_h[0]);
  __pipeline_commit();
  for (int t = 0; t < tiles; ++t) {
    // Buffer (t + 1) & 1 was last read in iteration t - 1, which ended on a barrier.
    if (t + 1 < tiles) {
      load_tile<B>(padded, half_norms, c_begin + static_cast<int64_t>(t + 1) * kT,
                   tile_c[(t + 1) & 1], tile_h[(t + 1) & 1]);
    }
    __pipeline_commit();
    __pipeline_wait_prior(1);  // this thread's copies of tile t have landed
    __syncthreads();           // and everyone else's
    const float* sc = tile_c[t & 1];
    const float* sh = tile_h[t & 1];
    const uint32_t tile_first = static_cast<uint32_t>(c_begin + static_cast<int64_t>(t) * kT);
#pragma unroll 1
    for (int g = 0; g < kT; g += kG)
      score_group<B>(xr, sc + g * kB4, sh + g, tile_first + static_cast<uint32_t>(g), best,
                     best_group);
    __syncthreads();  // tile t is no longer read: iteration t + 1 may refill its buffer
  }

#pragma unroll
  for (int p = 0; p < kP; ++p) {
    const int64_t i = first_point + static_cast<int64_t>(p) * kAssignThreads;
    if (i >= n) continue;
    const uint32_t code = rescore<B>(xr[p], padded, half_norms, best_group[p], k, best[p]);
    const unsigned long long key = merge_key(best[p], code);
    if (merge) {
      atomicMax(keys + i, key);
    } else {
      keys[i] = key;
    }
  }
}

using AssignLauncher = void (*)(const AssignArgs&, cudaStream_t);
using OccupancyQuery = int (*)();

template <int B>
void launch_assign_b(const AssignArgs& a, cudaStream_t stream) {
  const dim3 grid(static_cast<unsigned>(a.plan.point_blocks), static_cast<unsigned>(a.plan.splits));
  assign_kernel<B><<<grid, kAssignThreads, 0, stream>>>(a.x, a.n, a.padded, a.half_norms, a.k,
                                                        a.plan.split_centroids, a.plan.padded_k,
                                                        a.plan.splits > 1, a.keys);
}

template <int B>
int blocks_per_sm_b() {
  int blocks = 0;
  PGKM_CUDA_TRY(
      cudaOccupancyMaxActiveBlocksPerMultiprocessor(&blocks, assign_kernel<B>, kAssignThreads, 0));
  return blocks;
}

template <int... I>
constexpr std::array<AssignLauncher, sizeof...(I)> launchers(std::integer_sequence<int, I...>) {
  return {&launch_assign_b<I + 1>...};
}
template <int... I>
constexpr std::array<OccupancyQuery, sizeof...(I)> occupancy_queries(
    std::integer_sequence<int, I...>) {
  return {&blocks_per_sm_b<I + 1>...};
}

constexpr auto kLaunchers = launchers(std::make_integer_sequence<int, 32>{});
constexpr auto kOccupancy = occupancy_queries(std::make_integer_sequence<int, 32>{});

}  // namespace

int assign_blocks_per_sm(int dim) {
  return kOccupancy.at(static_cast<size_t>(dim - 1))();
}

void launch_assign(int dim, const AssignArgs& args, cudaStream_t stream) {
  kLaunchers.at(static_cast<size_t>(dim - 1))(args, stream);
  PGKM_CUDA_TRY(cudaGetLastError());
}

}  // namespace pgkm::cuda
