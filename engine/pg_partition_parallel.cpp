// engine/pg_partition_internal.h: the parallel selection of one large node of the
// bisection (all threads on one node while there are fewer nodes than threads). It finds
// the same cut and the same left child as the serial selection in pg_partition.cpp: the
// left child is the `cut` smallest members in (distance, index) order, a set that does not
// depend on how the work is divided.
#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <utility>
#include <vector>

#include "core/errors.h"
#include "engine/pg_partition_internal.h"

namespace pgkm::partition {

// select_cut for a large node with every thread: the same cut, found by a radix
// selection instead of nth_element, and the left child marked in left_ (keyed_
// stays in position order). The left child is the `cut` smallest members in
// (distance, index) order, a set that does not depend on how it is found.
int64_t Partitioner::select_cut_parallel(const Node& node, uint64_t weight, int64_t k_left) {
  const int64_t m = node.size();
  const auto k = static_cast<uint64_t>(node.k);
  const uint64_t target = weight * static_cast<uint64_t>(k_left);  // scaled by k
  const int64_t lowest = k_left;
  const int64_t highest = m - (node.k - k_left);
  int64_t cut = 0;
  // The left child: the members before `pivot`, and `pivot` itself if inclusive.
  Keyed pivot{};
  bool have_pivot = false;
  bool inclusive = false;
  if (weight == static_cast<uint64_t>(m)) {
    const uint64_t floor_cut = target / k;
    cut = std::clamp(static_cast<int64_t>(floor_cut + (2 * (target % k) > k ? 1 : 0)), lowest,
                     highest);
  } else {
    // As weighted_cut: the first member whose prefix weight reaches the target,
    // then the closer of the prefixes just before and just after it.
    const Selected s = select_parallel(node, true, target, k);
    const uint64_t above = s.below + local_.weight[s.member.pos];
    const int64_t closest = target - s.below * k <= above * k - target ? s.rank : s.rank + 1;
    cut = std::clamp(closest, lowest, highest);
    pivot = s.member;
    have_pivot = cut == s.rank || cut == s.rank + 1;
    inclusive = cut == s.rank + 1;
  }
  // Otherwise the pivot is the member at rank `cut`: the first whose count of
  // members up to and including it reaches cut + 1.
  if (!have_pivot) pivot = select_parallel(node, false, static_cast<uint64_t>(cut) + 1, 1).member;
#pragma omp parallel for schedule(static)
  for (int64_t i = node.begin; i < node.end; ++i) {
    const Keyed& e = keyed_[i];
    left_[e.pos] = e < pivot || (inclusive && e.index == pivot.index) ? 1 : 0;
  }
  return cut;
}

// The members of the node whose distance bits under `mask` equal `value`, in
// position order: each thread gathers its chunk, and the chunks are joined in order.
std::vector<Keyed> Partitioner::candidates(const Node& node, uint64_t mask, uint64_t value) const {
  const int chunks = omp_get_max_threads();
  std::vector<std::vector<Keyed>> found(static_cast<size_t>(chunks));
#pragma omp parallel for schedule(static, 1)
  for (int c = 0; c < chunks; ++c) {
    for (int64_t i = node.begin + chunk_begin(node.size(), chunks, c);
         i < node.begin + chunk_begin(node.size(), chunks, c + 1); ++i) {
      if ((keyed_[i].dist_bits() & mask) == value)
        found[static_cast<size_t>(c)].push_back(keyed_[i]);
    }
  }
  std::vector<Keyed> all;
  for (const std::vector<Keyed>& f : found)
    all.insert(all.end(), f.begin(), f.end());
  return all;
}

// The first member, in (distance, index) order, at which the running total of
// weights (by_weight) or of members, times `scale`, reaches `target`; requires
// that the node's total times scale does. An MSD radix selection: histograms of
// kDigitBits distance bits at a time (integer counts and weights, summed over
// threads exactly) pick the bucket holding that member, until few enough
// candidates are left to sort.
Selected Partitioner::select_parallel(const Node& node, bool by_weight, uint64_t target,
                                      uint64_t scale) {
  const auto weight = [&](const Keyed& e) {
    return by_weight ? uint64_t{local_.weight[e.pos]} : 1;
  };
  uint64_t all_and = ~uint64_t{0};
  uint64_t all_or = 0;
#pragma omp parallel for schedule(static) reduction(& : all_and) reduction(| : all_or)
  for (int64_t i = node.begin; i < node.end; ++i) {
    all_and &= keyed_[i].dist_bits();
    all_or |= keyed_[i].dist_bits();
  }
  // Bits above the highest varying one are shared by every member.
  int shift = std::bit_width(all_and ^ all_or);
  uint64_t mask = ~uint64_t{0} << shift;
  if (shift == 64) mask = 0;
  uint64_t value = all_and & mask;
  Selected out;
  int64_t remaining = node.size();
  const int threads = omp_get_max_threads();
  while (remaining > kParallelSortRange && shift > 0) {
    const int bits = std::min(kDigitBits, shift);
    shift -= bits;
    const size_t buckets = size_t{1} << bits;
    std::vector<uint64_t> count(buckets * static_cast<size_t>(threads), 0);
    std::vector<uint64_t> total(buckets * static_cast<size_t>(threads), 0);
#pragma omp parallel
    {
      const auto t = static_cast<size_t>(omp_get_thread_num());
      uint64_t* my_count = count.data() + t * buckets;
      uint64_t* my_total = total.data() + t * buckets;
#pragma omp for schedule(static)
      for (int64_t i = node.begin; i < node.end; ++i) {
        const uint64_t bits_i = keyed_[i].dist_bits();
        if ((bits_i & mask) != value) continue;
        const size_t bucket = (bits_i >> shift) & (buckets - 1);
        ++my_count[bucket];
        my_total[bucket] += weight(keyed_[i]);
      }
    }
    size_t bucket = 0;
    for (;; ++bucket) {
      PGKM_ASSERT(bucket < buckets, "selection target beyond the node's total");
      uint64_t c = 0;
      uint64_t w = 0;
      for (size_t t = 0; t < static_cast<size_t>(threads); ++t) {
        c += count[t * buckets + bucket];
        w += total[t * buckets + bucket];
      }
      if ((out.below + w) * scale >= target) {
        remaining = static_cast<int64_t>(c);
        break;
      }
      out.below += w;
      out.rank += static_cast<int64_t>(c);
    }
    mask |= (buckets - 1) << shift;
    value |= static_cast<uint64_t>(bucket) << shift;
  }
  std::vector<Keyed> left = candidates(node, mask, value);
  std::sort(left.begin(), left.end());
  for (const Keyed& e : left) {
    if ((out.below + weight(e)) * scale >= target) {
      out.member = e;
      return out;
    }
    out.below += weight(e);
    ++out.rank;
  }
  PGKM_ASSERT(false, "selection target beyond the node's total");
  return out;
}

// move_left_first for a large node with every thread; left_ already marks the
// left child. Each chunk is partitioned in place; then the right rows that lie
// before node.begin + cut and the left rows that lie after it are equally many,
// and the k-th of one is swapped with the k-th of the other.
void Partitioner::move_left_first_parallel(const Node& node, int64_t cut) {
  const int chunks = omp_get_max_threads();
  const auto start = [&](int c) { return node.begin + chunk_begin(node.size(), chunks, c); };
  std::vector<int64_t> split(static_cast<size_t>(chunks));
#pragma omp parallel for schedule(static, 1)
  for (int c = 0; c < chunks; ++c)
    split[static_cast<size_t>(c)] = partition_rows(start(c), start(c + 1));
  const int64_t mid = node.begin + cut;
  std::vector<std::pair<int64_t, int64_t>> right_before;  // [begin, end) ranges
  std::vector<std::pair<int64_t, int64_t>> left_after;
  for (int c = 0; c < chunks; ++c) {
    const int64_t s = split[static_cast<size_t>(c)];
    if (s < mid && s < start(c + 1)) right_before.emplace_back(s, std::min(start(c + 1), mid));
    if (s > mid && start(c) < s) left_after.emplace_back(std::max(start(c), mid), s);
  }
  const auto lengths = [](const std::vector<std::pair<int64_t, int64_t>>& ranges) {
    std::vector<int64_t> prefix{0};
    for (const auto& [b, e] : ranges)
      prefix.push_back(prefix.back() + e - b);
    return prefix;
  };
  const std::vector<int64_t> rp = lengths(right_before);
  const std::vector<int64_t> lp = lengths(left_after);
  PGKM_ASSERT(rp.back() == lp.back(), "left child has ", mid - node.begin - rp.back() + lp.back(),
              " rows, not ", cut);
  const int64_t swaps = rp.back();
#pragma omp parallel for schedule(static, 1)
  for (int c = 0; c < chunks; ++c) {
    int64_t k = chunk_begin(swaps, chunks, c);
    const int64_t k_end = chunk_begin(swaps, chunks, c + 1);
    size_t r = static_cast<size_t>(std::upper_bound(rp.begin(), rp.end(), k) - rp.begin()) - 1;
    size_t l = static_cast<size_t>(std::upper_bound(lp.begin(), lp.end(), k) - lp.begin()) - 1;
    while (k < k_end) {
      const int64_t a = right_before[r].first + (k - rp[r]);
      const int64_t b = left_after[l].first + (k - lp[l]);
      const int64_t run =
          std::min({k_end - k, right_before[r].second - a, left_after[l].second - b});
      for (int64_t j = 0; j < run; ++j)
        swap_rows(a + j, b + j);
      k += run;
      if (a + run == right_before[r].second) ++r;
      if (b + run == left_after[l].second) ++l;
    }
  }
}

}  // namespace pgkm::partition
