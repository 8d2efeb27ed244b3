#include "engine/points.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>

#include "core/errors.h"

namespace pgkm {

uint64_t PointSet::total_weight() const {
  uint64_t total = 0;
  for (uint32_t w : weight)
    total += w;
  return total;
}

float PointSet::max_abs() const {
  float m = 0.f;
  for (float v : x)
    m = std::max(m, std::fabs(v));
  return m;
}

namespace {

// Bit pattern of a coordinate with -0.0 folded into +0.0, so that the two compare
// equal as they do numerically (they are the same weight for clustering).
uint32_t canonical_bits(float v) {
  return v == 0.f ? 0u : std::bit_cast<uint32_t>(v);
}

uint64_t hash_row(const float* row, int dim) {
  uint64_t h = 0x9E3779B97F4A7C15ull ^ static_cast<uint64_t>(dim);
  for (int d = 0; d < dim; ++d) {
    h ^= canonical_bits(row[d]);
    h *= 0xBF58476D1CE4E5B9ull;
    h ^= h >> 31;
  }
  return h;
}

bool rows_equal(const float* a, const float* b, int dim) {
  for (int d = 0; d < dim; ++d) {
    if (canonical_bits(a[d]) != canonical_bits(b[d])) return false;
  }
  return true;
}

}  // namespace

Deduplicated deduplicate(std::span<const float> x, int dim) {
  PGKM_ASSERT(dim > 0 && x.size() % static_cast<size_t>(dim) == 0);
  const size_t n = x.size() / static_cast<size_t>(dim);
  PGKM_ASSERT(n < (size_t{1} << 32), "more than 2^32 vectors in one layer");
  Deduplicated out;
  out.points.dim = dim;
  out.source_to_point.resize(n);

  // Open addressing over point ids, load factor <= 1/2. Linear in n, single pass in
  // input order, so point ids follow first occurrence.
  size_t capacity = 16;
  while (capacity < 2 * n)
    capacity *= 2;
  constexpr uint32_t kFree = 0xFFFFFFFFu;
  std::vector<uint32_t> table(capacity, kFree);
  std::vector<const float*> point_rows;
  for (size_t i = 0; i < n; ++i) {
    const float* row = x.data() + i * static_cast<size_t>(dim);
    size_t slot = hash_row(row, dim) & (capacity - 1);
    while (table[slot] != kFree && !rows_equal(point_rows[table[slot]], row, dim)) {
      slot = (slot + 1) & (capacity - 1);
    }
    if (table[slot] == kFree) {
      table[slot] = static_cast<uint32_t>(point_rows.size());
      point_rows.push_back(row);
      out.points.weight.push_back(0);
    }
    const uint32_t id = table[slot];
    out.points.weight[id] += 1;
    out.source_to_point[i] = id;
  }
  out.points.x.resize(point_rows.size() * static_cast<size_t>(dim));
  for (size_t p = 0; p < point_rows.size(); ++p) {
    for (int d = 0; d < dim; ++d) {
      const float v = point_rows[p][d];
      out.points.x[p * static_cast<size_t>(dim) + static_cast<size_t>(d)] = v == 0.f ? 0.f : v;
    }
  }
  return out;
}

void exact_mean(const PointSet& points, std::span<const uint32_t> members, const FixedPoint& fp,
                std::span<float> out) {
  PGKM_ASSERT(!members.empty() && out.size() == static_cast<size_t>(points.dim));
  int64_t sums[64] = {};
  PGKM_ASSERT(points.dim <= 64);
  uint64_t count = 0;
  for (uint32_t m : members) {
    const uint32_t w = points.weight[m];
    const float* row = points.x.data() + static_cast<size_t>(m) * static_cast<size_t>(points.dim);
    for (int d = 0; d < points.dim; ++d)
      sums[d] += static_cast<int64_t>(w) * fp.quantize(row[d]);
    count += w;
  }
  for (int d = 0; d < points.dim; ++d)
    out[static_cast<size_t>(d)] = fp.mean(sums[d], count);
}

}  // namespace pgkm
