// Portable assignment kernels: the arithmetic contract of Backend::assign written out
// literally, one point at a time. They are the reference the SIMD kernels must match
// bit for bit, and the path used on CPUs without AVX2/FMA.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

#include "kernels/backend.h"
#include "kernels/cpu/assign_kernels.h"

namespace pgkm::cpu {
namespace {

// Lowest j with the largest score_j = fma chain of x_d * c_jd from -0.5 |c_j|^2.
uint32_t nearest_centroid(const CentroidSet& c, const float* x) {
  const int dim = c.dim;
  float best = -std::numeric_limits<float>::infinity();
  uint32_t best_j = 0;
  for (int64_t j = 0; j < c.k; ++j) {
    const float* cj = c.rows + j * dim;
    float acc = c.half_norms[j];
    for (int d = 0; d < dim; ++d)
      acc = std::fma(x[d], cj[d], acc);
    if (acc > best) {
      best = acc;
      best_j = static_cast<uint32_t>(j);
    }
  }
  return best_j;
}

float squared_distance(const float* x, const float* c, int dim) {
  float acc = 0.f;
  for (int d = 0; d < dim; ++d) {
    const float t = x[d] - c[d];
    acc = std::fma(t, t, acc);
  }
  return acc;
}

// Box key of c_a and block b: the pair-key chain on the distances to the block's box.
float box_key(const CentroidSet& c, const float* ca, int64_t b, int64_t blocks) {
  float box = 0.f;
  for (int d = 0; d < c.dim; ++d) {
    const float below = c.box_lo[d * blocks + b] - ca[d];
    const float above = ca[d] - c.box_hi[d * blocks + b];
    const float t = std::max(std::max(below, above), 0.f);
    box = std::fma(t, t, box);
  }
  return box;
}

// score_j of the contract for the block slot `slot`, read from the grouped layout.
float slot_score(const CandidateBlock& c, int64_t slot, const float* x) {
  const float* cg = c.grouped + (slot / kGroupSize) * c.dim * kGroupSize + slot % kGroupSize;
  float acc = c.half_norms[slot];
  for (int d = 0; d < c.dim; ++d)
    acc = std::fma(x[d], cg[d * kGroupSize], acc);
  return acc;
}

}  // namespace

void score_candidates_scalar(const CandidateBlock& block, int64_t groups, const float* tile,
                             int width, uint32_t* codes, float* dist) {
  const int dim = block.dim;
  float x[kMaxBlockSize];
  for (int lane = 0; lane < width; ++lane) {
    for (int d = 0; d < dim; ++d)
      x[d] = tile[d * width + lane];
    float best = -std::numeric_limits<float>::infinity();
    uint32_t best_id = kNoCandidate;
    // Slots are in key order, not index order: equal scores go to the lower index.
    for (int64_t slot = 0; slot < groups * kGroupSize; ++slot) {
      const uint32_t id = block.ids[slot];
      if (id == kNoCandidate) continue;
      const float score = slot_score(block, slot, x);
      if (score > best || (score == best && id < best_id) || best_id == kNoCandidate) {
        best = score;
        best_id = id;
      }
    }
    codes[lane] = best_id;
    dist[lane] = squared_distance(x, block.rows + int64_t{best_id} * dim, dim);
  }
}

void select_levels_scalar(const CentroidSet& centroids, int64_t a, float block_limit,
                          const float* limits, int levels, int64_t stride, uint32_t* out,
                          int64_t* counts) {
  const int dim = centroids.dim;
  const float* ca = centroids.rows + a * dim;
  const int64_t blocks = centroids.column_stride / 16;
  for (int l = 0; l < levels; ++l)
    counts[l] = 0;
  for (int64_t b = 0; b < blocks; ++b) {
    if (box_key(centroids, ca, b, blocks) > block_limit) continue;
    for (int64_t i = b * 16; i < (b + 1) * 16 && i < centroids.k; ++i) {
      const uint32_t j = centroids.block_ids[i];
      // Pair key: the dist chain between two centroids (candidates::pair_key).
      const float key = squared_distance(centroids.rows + int64_t{j} * dim, ca, dim);
      int l = 0;
      while (l < levels && !(key <= limits[l]))
        ++l;
      if (l < levels) out[l * stride + counts[l]++] = j;
    }
  }
}

void fill_block_scalar(const CentroidSet& centroids, const uint32_t* ids, int64_t count,
                       int64_t groups, float* grouped, float* half_norms, uint32_t* block_ids) {
  const int dim = centroids.dim;
  for (int64_t slot = 0; slot < groups * kGroupSize; ++slot) {
    float* dst = grouped + (slot / kGroupSize) * dim * kGroupSize + slot % kGroupSize;
    const bool real = slot < count;
    const uint32_t id = real ? ids[slot] : 0;
    for (int d = 0; d < dim; ++d)
      dst[d * kGroupSize] = real ? centroids.rows[int64_t{id} * dim + d] : 0.f;
    half_norms[slot] = real ? centroids.half_norms[id] : -std::numeric_limits<float>::infinity();
    block_ids[slot] = real ? id : kNoCandidate;
  }
}

float own_distances_scalar(const float* xs, int64_t m, const float* ca, int dim, float* own) {
  float farthest = -1.f;
  for (int64_t i = 0; i < m; ++i) {
    own[i] = squared_distance(xs + i * dim, ca, dim);
    farthest = std::max(farthest, own[i]);
  }
  return farthest;
}

int64_t select_neighbors_scalar(const CentroidSet& centroids, int64_t a, float limit,
                                float block_limit, uint32_t* ids, float* keys) {
  const int dim = centroids.dim;
  const float* ca = centroids.rows + a * dim;
  const int64_t blocks = centroids.column_stride / 16;
  int64_t count = 0;
  for (int64_t b = 0; b < blocks; ++b) {
    if (box_key(centroids, ca, b, blocks) > block_limit) continue;
    for (int64_t i = b * 16; i < (b + 1) * 16 && i < centroids.k; ++i) {
      const uint32_t j = centroids.block_ids[i];
      const float key = squared_distance(centroids.rows + int64_t{j} * dim, ca, dim);
      if (key <= limit) {
        ids[count] = j;
        keys[count++] = key;
      }
    }
  }
  return count;
}

void assign_tiles_scalar(const CentroidSet& centroids, const TileRange& range) {
  const int dim = centroids.dim;
  float x[kMaxBlockSize];
  for (int64_t t = range.first; t < range.last; ++t) {
    const float* tile = range.tiles + t * dim * kTileWidth;
    for (int lane = 0; lane < kTileWidth; ++lane) {
      const int64_t p = t * kTileWidth + lane;
      if (p >= range.n) break;
      for (int d = 0; d < dim; ++d)
        x[d] = tile[d * kTileWidth + lane];
      const uint32_t code = nearest_centroid(centroids, x);
      range.codes[p] = code;
      range.dist[p] = squared_distance(x, centroids.rows + int64_t{code} * dim, dim);
    }
  }
}

}  // namespace pgkm::cpu
