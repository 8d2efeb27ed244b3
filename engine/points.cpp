#include "engine/points.h"

#include <omp.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <utility>

#include "core/errors.h"
#include "engine/chunks.h"

namespace pgkm {

namespace {

// Loops over fewer elements than this run on one thread.
constexpr int64_t kParallelMin = int64_t{1} << 15;

}  // namespace

// Integer sums and maxima are exact, so the reductions give the same value for any
// split between threads.
uint64_t PointSet::total_weight() const {
  const int64_t n = size();
  uint64_t total = 0;
#pragma omp parallel for schedule(static) reduction(+ : total) if (n >= kParallelMin)
  for (int64_t i = 0; i < n; ++i)
    total += weight[static_cast<size_t>(i)];
  return total;
}

float PointSet::max_abs() const {
  // Eight running maxima instead of one: a single one is a chain of dependent
  // max instructions; eight vectorise. The maximum of finite values is the same
  // whatever the grouping.
  constexpr size_t kLanes = 8;
  const auto blocks = static_cast<int64_t>(x.size() / kLanes);
  float m = 0.f;
#pragma omp parallel if (blocks * static_cast <int64_t>(kLanes) >= kParallelMin)
  {
    float lane[kLanes] = {};
#pragma omp for schedule(static) nowait
    for (int64_t b = 0; b < blocks; ++b) {
      for (size_t j = 0; j < kLanes; ++j)
        lane[j] = std::max(lane[j], std::fabs(x[static_cast<size_t>(b) * kLanes + j]));
    }
    float mine = 0.f;
    for (float v : lane)
      mine = std::max(mine, v);
#pragma omp critical(pgkm_max_abs)
    m = std::max(m, mine);
  }
  for (size_t i = static_cast<size_t>(blocks) * kLanes; i < x.size(); ++i)
    m = std::max(m, std::fabs(x[i]));
  return m;
}

namespace {

// Bit pattern of a coordinate with -0.0 folded into +0.0, so that the two compare
// equal as they do numerically (they are the same weight for clustering).
uint32_t canonical_bits(float v) {
  return v == 0.f ? 0u : std::bit_cast<uint32_t>(v);
}

// A 64-bit hash of a row whose high bits pick the row's shard and whose low bits
// pick its slot in the shard's table (hence the final avalanche).
uint64_t hash_row(const float* row, int dim) {
  uint64_t h = 0x9E3779B97F4A7C15ull ^ static_cast<uint64_t>(dim);
  for (int d = 0; d < dim; ++d) {
    h ^= canonical_bits(row[d]);
    h *= 0xBF58476D1CE4E5B9ull;
    h ^= h >> 31;
  }
  h ^= h >> 33;
  h *= 0xFF51AFD7ED558CCDull;
  return h ^ (h >> 33);
}

bool rows_equal(const float* a, const float* b, int dim) {
  for (int d = 0; d < dim; ++d) {
    if (canonical_bits(a[d]) != canonical_bits(b[d])) return false;
  }
  return true;
}

// Deduplication splits the rows by hash into shards of about this many rows, so a
// shard's table stays in cache; at most 2^kMaxShardBits shards.
constexpr int64_t kRowsPerShard = 2048;
constexpr int kMaxShardBits = 16;

// A row and its hash, grouped by shard.
struct HashedRow {
  uint64_t hash;
  uint32_t index;  // input index of the row
};

// The rows of each shard in input order: rows of shard s are
// order[begin[s], begin[s + 1]). A stable counting sort, so its result does not
// depend on how many chunks (threads) count and scatter. The hash travels with the
// index so that the shard scans read memory in order.
void bucket_by_shard(std::span<const uint64_t> hash, int bits, std::vector<HashedRow>& order,
                     std::vector<int64_t>& begin, int chunks) {
  const auto n = static_cast<int64_t>(hash.size());
  const int64_t shards = int64_t{1} << bits;
  const auto shard_of = [bits](uint64_t h) {
    return bits == 0 ? size_t{0} : static_cast<size_t>(h >> (64 - bits));
  };
  std::vector<int64_t> offset(static_cast<size_t>(chunks * shards), 0);  // [chunk][shard]
#pragma omp parallel for schedule(static, 1) if (chunks > 1)
  for (int c = 0; c < chunks; ++c) {
    int64_t* count = offset.data() + static_cast<size_t>(c * shards);
    for (int64_t i = chunk_begin(n, chunks, c); i < chunk_begin(n, chunks, c + 1); ++i)
      ++count[shard_of(hash[static_cast<size_t>(i)])];
  }
  begin.resize(static_cast<size_t>(shards + 1));
  int64_t sum = 0;
  for (int64_t s = 0; s < shards; ++s) {
    begin[static_cast<size_t>(s)] = sum;
    for (int c = 0; c < chunks; ++c)
      sum += std::exchange(offset[static_cast<size_t>(c * shards + s)], sum);
  }
  begin[static_cast<size_t>(shards)] = sum;
  order.resize(static_cast<size_t>(n));
#pragma omp parallel for schedule(static, 1) if (chunks > 1)
  for (int c = 0; c < chunks; ++c) {
    int64_t* next = offset.data() + static_cast<size_t>(c * shards);
    for (int64_t i = chunk_begin(n, chunks, c); i < chunk_begin(n, chunks, c + 1); ++i) {
      const uint64_t h = hash[static_cast<size_t>(i)];
      order[static_cast<size_t>(next[shard_of(h)]++)] = {h, static_cast<uint32_t>(i)};
    }
  }
}

constexpr uint32_t kFree = 0xFFFFFFFFu;

struct Slot {
  uint64_t hash = 0;
  uint32_t first = kFree;  // input index of the first row with this value
  uint32_t count = 0;      // rows with this value so far
};

// Open addressing with linear probing and load factor <= 1/2. Sized for the
// shard's rows up to 4 * kRowsPerShard and grown beyond, so that a shard of many
// copies of few values keeps a small table.
class ShardTable {
 public:
  void reset(int64_t rows) {
    size_t capacity = 16;
    while (capacity < 2 * static_cast<size_t>(std::min(rows, 4 * kRowsPerShard)))
      capacity *= 2;
    slots_.assign(capacity, Slot{});
    used_ = 0;
  }
  // The slot holding row i's value, claimed for row i if the value is new.
  Slot& find_or_insert(uint64_t h, uint32_t i, const float* x, int dim) {
    if (2 * (used_ + 1) > slots_.size()) grow();
    const size_t mask = slots_.size() - 1;
    const float* row = x + static_cast<size_t>(i) * static_cast<size_t>(dim);
    for (size_t s = h & mask;; s = (s + 1) & mask) {
      Slot& slot = slots_[s];
      if (slot.first == kFree) {
        slot = {h, i, 0};
        ++used_;
        return slot;
      }
      if (slot.hash == h &&
          rows_equal(x + static_cast<size_t>(slot.first) * static_cast<size_t>(dim), row, dim))
        return slot;
    }
  }
  std::span<const Slot> slots() const { return slots_; }

 private:
  void grow() {
    std::vector<Slot> old = std::exchange(slots_, std::vector<Slot>(2 * slots_.size()));
    const size_t mask = slots_.size() - 1;
    for (const Slot& slot : old) {
      if (slot.first == kFree) continue;
      size_t s = slot.hash & mask;
      while (slots_[s].first != kFree)
        s = (s + 1) & mask;
      slots_[s] = slot;
    }
  }

  std::vector<Slot> slots_;
  size_t used_ = 0;
};

// Numbers the first occurrences in input order and builds the points. On entry
// out.source_to_point[i] is the first occurrence of row i's value and point_of[f]
// the multiplicity of first occurrence f; on return out.source_to_point[i] is row
// i's point id. Chunk c's ids start after the first occurrences of chunks < c.
void number_first_occurrences(std::span<const float> x, int dim, int chunks, Deduplicated& out,
                              std::vector<uint32_t>& point_of) {
  std::vector<uint32_t>& first = out.source_to_point;
  const auto n = static_cast<int64_t>(first.size());
  const auto is_first = [&](int64_t i) { return first[static_cast<size_t>(i)] == i; };
  std::vector<int64_t> base(static_cast<size_t>(chunks) + 1, 0);
#pragma omp parallel for schedule(static, 1) if (chunks > 1)
  for (int c = 0; c < chunks; ++c) {
    int64_t count = 0;
    for (int64_t i = chunk_begin(n, chunks, c); i < chunk_begin(n, chunks, c + 1); ++i)
      count += is_first(i) ? 1 : 0;
    base[static_cast<size_t>(c) + 1] = count;
  }
  for (size_t c = 0; c < static_cast<size_t>(chunks); ++c)
    base[c + 1] += base[c];
  PointSet& points = out.points;
  const auto d = static_cast<size_t>(dim);
  points.dim = dim;
  points.weight.resize(static_cast<size_t>(base.back()));
  points.x.resize(static_cast<size_t>(base.back()) * d);
#pragma omp parallel for schedule(static, 1) if (chunks > 1)
  for (int c = 0; c < chunks; ++c) {
    auto id = static_cast<size_t>(base[static_cast<size_t>(c)]);
    for (int64_t i = chunk_begin(n, chunks, c); i < chunk_begin(n, chunks, c + 1); ++i) {
      if (!is_first(i)) continue;
      const auto f = static_cast<size_t>(i);
      points.weight[id] = point_of[f];
      point_of[f] = static_cast<uint32_t>(id);
      const float* from = x.data() + f * d;
      float* to = points.x.data() + id * d;
      for (size_t j = 0; j < d; ++j)
        to[j] = from[j] == 0.f ? 0.f : from[j];
      ++id;
    }
  }
#pragma omp parallel for schedule(static) if (chunks > 1)
  for (int64_t i = 0; i < n; ++i)
    first[static_cast<size_t>(i)] = point_of[first[static_cast<size_t>(i)]];
}

}  // namespace

// Four passes, each split between threads without changing its result: hash every
// row; group the rows by shard (high hash bits), keeping input order within a
// shard; find in each shard the first occurrence of every value (a row's value
// first occurs in its own shard, whichever thread scans it); number the first
// occurrences in input order with a prefix sum over fixed chunks.
Deduplicated deduplicate(std::span<const float> x, int dim) {
  PGKM_ASSERT(dim > 0 && x.size() % static_cast<size_t>(dim) == 0);
  const size_t n = x.size() / static_cast<size_t>(dim);
  PGKM_ASSERT(n < (size_t{1} << 32), "more than 2^32 vectors in one layer");
  const auto rows = static_cast<int64_t>(n);
  const bool parallel = rows >= kParallelMin;
  const int chunks = parallel ? omp_get_max_threads() : 1;

  std::vector<uint64_t> hash(n);
#pragma omp parallel for schedule(static) if (parallel)
  for (int64_t i = 0; i < rows; ++i)
    hash[static_cast<size_t>(i)] = hash_row(x.data() + i * dim, dim);
  int bits = 0;
  while (bits < kMaxShardBits && (rows >> bits) > kRowsPerShard)
    ++bits;
  std::vector<HashedRow> order;
  std::vector<int64_t> shard_begin;
  bucket_by_shard(hash, bits, order, shard_begin, chunks);
  hash = {};

  // first[i]: input index of the first row equal to row i. point_of[f] for a first
  // occurrence f: its multiplicity, later its point id.
  Deduplicated out;
  std::vector<uint32_t>& first = out.source_to_point;
  first.resize(n);
  std::vector<uint32_t> point_of(n);
  const int64_t shards = int64_t{1} << bits;
#pragma omp parallel if (parallel)
  {
    ShardTable table;
#pragma omp for schedule(dynamic, 8)
    for (int64_t s = 0; s < shards; ++s) {
      const int64_t begin = shard_begin[static_cast<size_t>(s)];
      const int64_t end = shard_begin[static_cast<size_t>(s + 1)];
      table.reset(end - begin);
      for (int64_t k = begin; k < end; ++k) {
        const HashedRow& r = order[static_cast<size_t>(k)];
        Slot& slot = table.find_or_insert(r.hash, r.index, x.data(), dim);
        ++slot.count;
        first[r.index] = slot.first;
      }
      for (const Slot& slot : table.slots()) {
        if (slot.first != kFree) point_of[slot.first] = slot.count;
      }
    }
  }
  order = {};
  number_first_occurrences(x, dim, chunks, out, point_of);
  return out;
}
namespace {

// Adds weight * quantized coordinates of members[begin, end) to sums[0, dim) and
// their weights to count.
void add_members(const PointSet& points, std::span<const uint32_t> members, int64_t begin,
                 int64_t end, const FixedPoint& fp, int64_t* sums, uint64_t& count) {
  const auto dim = static_cast<size_t>(points.dim);
  for (int64_t i = begin; i < end; ++i) {
    const uint32_t p = members[static_cast<size_t>(i)];
    const uint32_t w = points.weight[p];
    const float* row = points.x.data() + static_cast<size_t>(p) * dim;
    for (size_t d = 0; d < dim; ++d)
      sums[d] += static_cast<int64_t>(w) * fp.quantize(row[d]);
    count += w;
  }
}

}  // namespace

// The weights are added as integers in input order: the same on every rank.
void apply_vector_weights(Deduplicated& d, std::span<const uint32_t> vector_weights,
                          const std::string& layer) {
  PGKM_ASSERT(vector_weights.size() == d.source_to_point.size());
  std::vector<uint64_t> sum(d.points.weight.size(), 0);
  for (size_t i = 0; i < vector_weights.size(); ++i)
    sum[d.source_to_point[i]] += vector_weights[i];  // each >= 1: run_kmeans checked
  for (size_t p = 0; p < sum.size(); ++p) {
    PGKM_EXPECTS(sum[p] <= UINT32_MAX, layer, "distinct subvector ", p, " has weight ", sum[p],
                 " (its copies' row weights added up), more than 2^32 - 1");
    d.points.weight[p] = static_cast<uint32_t>(sum[p]);
  }
}

// Integer sums are exact, so any split of the members between threads gives the
// same sums. Small sets, and calls from inside a parallel region, stay on the
// calling thread without touching the OpenMP runtime (this runs once per cluster).
uint64_t exact_sums(const PointSet& points, std::span<const uint32_t> members, const FixedPoint& fp,
                    std::span<int64_t> sums) {
  PGKM_ASSERT(sums.size() == static_cast<size_t>(points.dim) && points.dim <= 64);
  const auto dim = static_cast<size_t>(points.dim);
  const auto m = static_cast<int64_t>(members.size());
  std::fill(sums.begin(), sums.end(), 0);
  uint64_t count = 0;
  if (m < kParallelMin || omp_in_parallel()) {
    add_members(points, members, 0, m, fp, sums.data(), count);
    return count;
  }
#pragma omp parallel
  {
    int64_t local[64] = {};
    uint64_t local_count = 0;
    const int threads = omp_get_num_threads();
    const int t = omp_get_thread_num();
    add_members(points, members, m * t / threads, m * (t + 1) / threads, fp, local, local_count);
#pragma omp critical(pgkm_exact_sums)
    {
      for (size_t d = 0; d < dim; ++d)
        sums[d] += local[d];
      count += local_count;
    }
  }
  return count;
}

void exact_mean(const PointSet& points, std::span<const uint32_t> members, const FixedPoint& fp,
                std::span<float> out) {
  PGKM_ASSERT(!members.empty() && out.size() == static_cast<size_t>(points.dim));
  PGKM_ASSERT(points.dim <= 64);
  int64_t sums[64];
  const std::span<int64_t> s(sums, static_cast<size_t>(points.dim));
  const uint64_t count = exact_sums(points, members, fp, s);
  for (size_t d = 0; d < s.size(); ++d)
    out[d] = fp.mean(s[d], count);
}

}  // namespace pgkm
