// The shape of the CUDA assignment kernel and how a pass is cut into blocks. Plain C++
// (no CUDA types): the backend, the kernels and the tests that run without a GPU share
// these numbers.
//
// A block of kAssignThreads threads owns points_per_block(b) consecutive points (each
// thread keeps points_per_thread(b) of them in registers) and one split of the
// centroids. It scores the split tile by tile (tile_centroids(b) centroids staged in
// shared memory, rows padded to padded_dim(b) floats so every load is 16 bytes), a group
// of group_size(b) centroids per broadcast load.
#pragma once

#include <cstdint>
#include <cstring>

// The shape functions are used by the kernels too (no CUDA types: only the annotation).
#ifdef __CUDACC__
#define PGKM_HOST_DEVICE __host__ __device__
#else
#define PGKM_HOST_DEVICE
#endif

namespace pgkm::cuda {

inline constexpr int kAssignThreads = 256;

// Floats per centroid row in shared memory: b rounded up to a multiple of 4.
PGKM_HOST_DEVICE constexpr int padded_dim(int b) {
  return (b + 3) / 4 * 4;
}
// Points kept in registers by each thread: 4 up to b = 16, then 2 (registers for 2 x 32
// coordinates plus the scores stay under the 128 that two blocks per SM allow).
PGKM_HOST_DEVICE constexpr int points_per_thread(int b) {
  return b <= 16 ? 4 : 2;
}
// Centroids scored between two group-maximum updates: the compare and select cost is
// spread over group_size * b FMAs per point, with points * group accumulators.
PGKM_HOST_DEVICE constexpr int group_size(int b) {
  return b <= 4 ? 16 : (b <= 8 ? 8 : (b <= 16 ? 4 : 8));
}
// Centroids per shared-memory tile: at most 16 KiB of coordinates per stage.
PGKM_HOST_DEVICE constexpr int tile_centroids(int b) {
  return padded_dim(b) <= 16 ? 256 : 128;
}
PGKM_HOST_DEVICE constexpr int points_per_block(int b) {
  return kAssignThreads * points_per_thread(b);
}

// The key under which a split's winner (score, index) is merged with atomicMax: the
// score's bits made order-preserving as unsigned (-0 counted as +0: equal scores must
// fall to the index) above the inverted index, so a higher score wins and among equal
// scores the lower index. Key 0 is below every key of a real score.
PGKM_HOST_DEVICE inline uint64_t merge_key(float score, uint32_t index) {
  uint32_t u = 0;
  if (score != 0.f) std::memcpy(&u, &score, sizeof u);
  const uint32_t ordered = (u & 0x80000000u) != 0 ? ~u : (u | 0x80000000u);
  return (static_cast<uint64_t>(ordered) << 32) | static_cast<uint32_t>(~index);
}
// The index in a merged key.
PGKM_HOST_DEVICE inline uint32_t merged_index(uint64_t key) {
  return ~static_cast<uint32_t>(key);
}

// How one pass over n points and k centroids is launched.
struct AssignPlan {
  int64_t point_blocks = 0;     // gridDim.x: blocks of points_per_block(b) points
  int splits = 1;               // gridDim.y: centroid ranges merged with atomicMax
  int64_t split_centroids = 0;  // centroids per split, a multiple of tile_centroids(b)
  int64_t padded_k = 0;         // k rounded up to whole tiles (padding never wins)
};

// Picks the number of splits of the centroids so that the `sms` multiprocessors get
// equal work. The kernel is issue-bound, so an SM with two resident blocks runs at its
// full rate and the finish time follows the blocks each SM is handed: the plan
// minimises ceil(blocks / sms) x (a block's work + its fixed cost), counting at least
// two blocks per SM. With enough point blocks there is one split (no merge atomics).
// Needs n >= 1, k >= 1, b in 1..32 and sms >= 1.
AssignPlan plan_assign(int64_t n, int64_t k, int b, int64_t sms);

// k rounded up to whole tiles of tile_centroids(b).
int64_t padded_centroids(int64_t k, int b);

}  // namespace pgkm::cuda
