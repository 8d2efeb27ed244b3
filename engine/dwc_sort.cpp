// engine/dwc_sort.h: the (distance, point) sort, serial and parallel, one result.
#include "engine/dwc_sort.h"

#include <omp.h>

#include <array>
#include <bit>
#include <utility>

namespace pgkm::dwc {
namespace {

uint64_t distance_bits(const Entry& e) {
  return std::bit_cast<uint64_t>(e.dist);
}

// Sorts each run of equal distance in v[begin, end) by point; a run that starts
// before `begin` belongs to whoever sorts the range before it.
void sort_ties(std::span<Entry> v, size_t begin, size_t end) {
  size_t first = begin;
  while (first > 0 && first < v.size() && v[first].dist == v[first - 1].dist)
    ++first;
  while (first < end) {
    size_t last = first + 1;
    while (last < v.size() && v[last].dist == v[first].dist)
      ++last;
    if (last - first > 1) std::sort(v.begin() + first, v.begin() + last);
    first = last;
  }
}

// One stable counting pass of an LSD radix sort on byte d of the distance,
// src -> dst, split into chunks: each chunk counts its entries, then scatters them
// to its own offsets (after those of lower buckets and of earlier chunks in the
// same bucket), so the pass is the serial pass whatever the chunking.
void radix_pass(std::span<const Entry> src, std::span<Entry> dst, size_t d, int chunks,
                std::vector<std::array<size_t, 256>>& count) {
  const auto n = static_cast<int64_t>(src.size());
  const auto digit = [d](const Entry& e) { return (distance_bits(e) >> (8 * d)) & 255; };
#pragma omp parallel for schedule(static, 1) if (chunks > 1)
  for (int c = 0; c < chunks; ++c) {
    count[c].fill(0);
    for (int64_t i = chunk_begin(n, chunks, c); i < chunk_begin(n, chunks, c + 1); ++i)
      ++count[c][digit(src[static_cast<size_t>(i)])];
  }
  size_t offset = 0;
  for (size_t bucket = 0; bucket < 256; ++bucket) {
    for (int c = 0; c < chunks; ++c)
      offset += std::exchange(count[c][bucket], offset);
  }
#pragma omp parallel for schedule(static, 1) if (chunks > 1)
  for (int c = 0; c < chunks; ++c) {
    for (int64_t i = chunk_begin(n, chunks, c); i < chunk_begin(n, chunks, c + 1); ++i) {
      const Entry& e = src[static_cast<size_t>(i)];
      dst[count[c][digit(e)]++] = e;
    }
  }
}

}  // namespace

// sort_entries with every thread: an LSD radix sort whose passes are split into
// one chunk per thread, then the runs of equal distance sorted by point.
void sort_entries_parallel(std::span<Entry> v, std::vector<Entry>& tmp) {
  const auto n = static_cast<int64_t>(v.size());
  const int chunks = omp_get_max_threads();
  // Bytes that all keys share would leave the order as it is: skip them.
  uint64_t all_and = ~uint64_t{0};
  uint64_t all_or = 0;
#pragma omp parallel for schedule(static) reduction(& : all_and) reduction(| : all_or)
  for (int64_t i = 0; i < n; ++i) {
    all_and &= distance_bits(v[static_cast<size_t>(i)]);
    all_or |= distance_bits(v[static_cast<size_t>(i)]);
  }
  const uint64_t varying = all_and ^ all_or;
  if (tmp.size() < v.size()) tmp.resize(v.size());
  std::vector<std::array<size_t, 256>> count(static_cast<size_t>(chunks));
  std::span<Entry> src = v;
  std::span<Entry> dst(tmp.data(), v.size());
  for (size_t d = 0; d < 8; ++d) {
    if (((varying >> (8 * d)) & 255) == 0) continue;
    radix_pass(src, dst, d, chunks, count);
    std::swap(src, dst);
  }
  if (src.data() != v.data()) {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; ++i)
      v[static_cast<size_t>(i)] = src[static_cast<size_t>(i)];
  }
#pragma omp parallel for schedule(static, 1)
  for (int c = 0; c < chunks; ++c) {
    sort_ties(v, static_cast<size_t>(chunk_begin(n, chunks, c)),
              static_cast<size_t>(chunk_begin(n, chunks, c + 1)));
  }
}

// Sorts by (dist, point): the same order as std::sort with Entry::operator<, but
// large tasks use a stable LSD radix sort on the distance bits (non-negative
// doubles order like their bit patterns), about three times faster; sorting is
// most of the run time on large layers. Runs of equal distance are then ordered
// by point. (dist, point) is a strict total order, so sort_entries_parallel gives
// the same result.
void sort_entries(std::span<Entry> v, std::vector<Entry>& tmp) {
  constexpr size_t kRadixFrom = 1024;
  if (v.size() < kRadixFrom) {
    std::sort(v.begin(), v.end());
    return;
  }
  std::vector<std::array<size_t, 256>> count(8, std::array<size_t, 256>{});
  for (const Entry& e : v) {
    const uint64_t key = distance_bits(e);
    for (size_t d = 0; d < 8; ++d)
      ++count[d][(key >> (8 * d)) & 255];
  }
  tmp.resize(v.size());
  std::span<Entry> src = v;
  std::span<Entry> dst(tmp.data(), v.size());
  for (size_t d = 0; d < 8; ++d) {
    // A byte that all keys share would leave the order as it is.
    if (std::find(count[d].begin(), count[d].end(), v.size()) != count[d].end()) continue;
    size_t offset = 0;
    for (size_t& c : count[d])
      offset += std::exchange(c, offset);
    for (const Entry& e : src)
      dst[count[d][(distance_bits(e) >> (8 * d)) & 255]++] = e;
    std::swap(src, dst);
  }
  if (src.data() != v.data()) std::copy(src.begin(), src.end(), v.begin());
  sort_ties(v, 0, v.size());
}

}  // namespace pgkm::dwc
