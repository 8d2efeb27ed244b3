// The pruned search's state between passes (pruned_cache.h): sorting the points by code
// and adding up the threads' changes to the sums.
#include "kernels/cpu/pruned_cache.h"

#include <omp.h>

#include <algorithm>
#include <utility>

#include "kernels/cpu/assign_kernels.h"

namespace pgkm::cpu {
namespace {

// A stable counting sort of rows [0, n) by key(i) < k, in parallel: move(i, to) puts
// row i at position `to`. Returns the first position of each key, [k + 1].
template <typename Key, typename Move>
std::vector<int64_t> counting_sort(int threads, int64_t n, int64_t k, const Key& key,
                                   const Move& move) {
  std::vector<int64_t> offsets(static_cast<size_t>(k) + 1, 0);
  std::vector<int64_t> cursor(static_cast<size_t>(threads * k), 0);
#pragma omp parallel num_threads(threads)
  {
    const int t = omp_get_thread_num();
    const int team = omp_get_num_threads();
    const int64_t first = n * t / team;
    const int64_t last = n * (t + 1) / team;
    int64_t* mine = cursor.data() + t * k;
    for (int64_t i = first; i < last; ++i)
      ++mine[key(i)];
#pragma omp barrier
#pragma omp single
    {
      int64_t row = 0;
      for (int64_t a = 0; a < k; ++a) {
        offsets[a] = row;
        for (int u = 0; u < team; ++u) {
          const int64_t count = cursor[u * k + a];
          cursor[u * k + a] = row;
          row += count;
        }
      }
      offsets[k] = row;
    }
    for (int64_t i = first; i < last; ++i)
      move(i, mine[key(i)]++);
  }
  return offsets;
}

}  // namespace

// Makes `cache` the points sorted by `previous`, unless it already is.
void sort_points(int threads, const CpuResidentPoints& points, int64_t k,
                 std::span<const uint32_t> previous, PrunedCache& cache) {
  const int64_t n = points.size();
  const int dim = points.dim();
  if (cache.k == k && cache.codes.size() == previous.size() &&
      std::equal(previous.begin(), previous.end(), cache.codes.begin())) {
    return;
  }
  cache.k = k;
  cache.have_sums = false;
  cache.codes.assign(previous.begin(), previous.end());
  cache.points.resize(static_cast<size_t>(n));
  cache.own.resize(static_cast<size_t>(n));
  cache.row_codes.resize(static_cast<size_t>(n));
  cache.next_points.resize(static_cast<size_t>(n));
  if (!cache.xs) {
    cache.xs = make_aligned_floats(static_cast<size_t>(n * dim));
    cache.next_xs = make_aligned_floats(static_cast<size_t>(n * dim));
  }
  float* xs = cache.xs.get();
  uint32_t* rows = cache.points.data();
  cache.offsets = counting_sort(
      threads, n, k, [&](int64_t p) { return previous[p]; },
      [&](int64_t p, int64_t to) {
        rows[to] = static_cast<uint32_t>(p);
        const float* src = points.point(p);
        for (int d = 0; d < dim; ++d)
          xs[to * dim + d] = src[d * kTileWidth];
      });
}

// After a pass: the copy sorted by the new codes (row_codes), whose by-point copy is
// `codes`.
void resort_points(int threads, int dim, std::span<const uint32_t> codes, PrunedCache& cache) {
  const int64_t n = static_cast<int64_t>(cache.points.size());
  const float* xs = cache.xs.get();
  float* next_xs = cache.next_xs.get();
  cache.offsets = counting_sort(
      threads, n, cache.k, [&](int64_t i) { return cache.row_codes[i]; },
      [&](int64_t i, int64_t to) {
        cache.next_points[to] = cache.points[i];
        std::copy_n(xs + i * dim, dim, next_xs + to * dim);
      });
  std::swap(cache.points, cache.next_points);
  std::swap(cache.xs, cache.next_xs);
  std::copy(codes.begin(), codes.end(), cache.codes.begin());
}

void apply_changes(int threads, std::span<const SumChanges> changes, PrunedCache& cache) {
  const auto values = static_cast<int64_t>(cache.sums.size());
  const auto k = static_cast<int64_t>(cache.counts.size());
#pragma omp parallel num_threads(threads)
  {
#pragma omp for schedule(static) nowait
    for (int64_t i = 0; i < values; ++i) {
      for (const SumChanges& c : changes)
        cache.sums[static_cast<size_t>(i)] += c.sums[static_cast<size_t>(i)];
    }
    // Unsigned arithmetic wraps, so adding a negative change as uint64 subtracts it.
#pragma omp for schedule(static)
    for (int64_t j = 0; j < k; ++j) {
      for (const SumChanges& c : changes)
        cache.counts[static_cast<size_t>(j)] +=
            static_cast<uint64_t>(c.counts[static_cast<size_t>(j)]);
    }
  }
}

}  // namespace pgkm::cpu
