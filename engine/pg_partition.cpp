#include "engine/pg_partition.h"

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdlib>
#include <limits>

#include "core/errors.h"

namespace pgkm {
namespace {

constexpr const char* kContext = "partition_guided";

// Nodes with fewer members run their distance passes on one thread: for them a
// parallel region costs more than it saves.
constexpr int64_t kParallelMinMembers = int64_t{1} << 15;

// The weighted selection halves its range with nth_element until this many
// members are left, then sorts them.
constexpr int64_t kSortRange = 64;

// The parallel selection narrows its candidates by kDigitBits bits of the
// distance at a time until at most kParallelSortRange are left, then sorts them.
constexpr int kDigitBits = 12;
constexpr int64_t kParallelSortRange = int64_t{1} << 14;

// Where chunk c starts when [0, n) is cut into `chunks` contiguous chunks.
int64_t chunk_begin(int64_t n, int64_t chunks, int64_t c) {
  return c * (n / chunks) + std::min(c, n % chunks);
}

// A member keyed by a squared distance. (distance, index) is a strict total order,
// so "the first i members" is the same set whatever order the members arrive in and
// whichever selection algorithm picks them.
struct Keyed {
  double dist;
  uint32_t index;  // the member's index in the caller's PointSet: the tie-break
  uint32_t pos;    // where the member's row is in Partitioner::local_

  bool operator<(const Keyed& other) const {
    return dist < other.dist || (dist == other.dist && index < other.index);
  }
  // The far point's order: the larger distance, ties to the lower index.
  bool farther_than(const Keyed& other) const {
    return dist > other.dist || (dist == other.dist && index < other.index);
  }
  // Non-negative doubles order like their bit patterns.
  uint64_t dist_bits() const { return std::bit_cast<uint64_t>(dist); }
};

// The member a selection stops at: the first, in (distance, index) order, at which
// the running total of weights (or of members) times a scale reaches a target.
struct Selected {
  Keyed member;
  int64_t rank = 0;    // members before it
  uint64_t below = 0;  // total of the members before it
};

// A node of the bisection: the members at positions [begin, end) of the local copy
// owe k centroids, which become output pieces first_piece .. first_piece + k - 1.
// k == 0 marks "no node". The members' fixed-point sums come with the node: a
// parent's sums minus one child's are the other child's, exactly.
struct Node {
  int64_t begin = 0;
  int64_t end = 0;
  int64_t k = 0;
  int64_t first_piece = 0;
  std::vector<int64_t> sums;  // [dim] exact_sums of the members
  uint64_t weight = 0;        // total weight of the members

  int64_t size() const { return end - begin; }
};

// Squared Euclidean distance in double, summed over the dimensions in order with
// no fused multiply-add, so every backend and thread count gets the same bits.
double squared_distance(const float* a, const float* b, int dim) {
  double sum = 0.0;
  for (int j = 0; j < dim; ++j) {
    const double t = static_cast<double>(a[j]) - static_cast<double>(b[j]);
    sum += t * t;
  }
  return sum;
}

// The bisection works on a private copy of the members' rows, kept so that every
// node's rows are contiguous: each split moves the left child's rows to the front
// of the node. Reading the caller's PointSet through a permuted index list instead
// costs a cache miss per row per pass, which made a 2.4M-point layer ~10x slower.
class Partitioner {
 public:
  Partitioner(const PointSet& points, std::span<const uint32_t> members, int64_t k,
              const FixedPoint& fp);
  std::vector<PartitionPiece> run();

 private:
  void split(const Node& node, bool parallel, Node* children);
  uint32_t far_point(const Node& node);
  void key_by_distance(const Node& node, const float* center, bool parallel);
  int64_t select_cut(const Node& node, uint64_t weight, int64_t k_left);
  int64_t weighted_cut(Keyed* keyed, int64_t m, uint64_t target, int64_t k);
  void move_left_first(const Node& node, int64_t cut);
  // Parallel counterparts for one large node, used while there are fewer nodes
  // than threads. They find the same cut and the same left child.
  uint32_t far_point_parallel(const Node& node);
  int64_t select_cut_parallel(const Node& node, uint64_t weight, int64_t k_left);
  Selected select_parallel(const Node& node, bool by_weight, uint64_t target, uint64_t scale);
  std::vector<Keyed> candidates(const Node& node, uint64_t mask, uint64_t value) const;
  void move_left_first_parallel(const Node& node, int64_t cut);
  int64_t partition_rows(int64_t begin, int64_t end);
  void swap_rows(int64_t a, int64_t b);
  void emit_leaf(const Node& node);
  void emit_singletons(const Node& node);

  // The node's members as positions in local_, the form exact_mean takes.
  std::span<const uint32_t> positions(const Node& node) const {
    return {positions_.data() + node.begin, static_cast<size_t>(node.size())};
  }
  // Gives node.sums and node.weight from its rows.
  void sum_rows(Node& node) const {
    node.sums.resize(static_cast<size_t>(local_.dim));
    node.weight = exact_sums(local_, positions(node), fp_, node.sums);
  }
  void sum_children(const Node& parent, Node* children) const;

  const FixedPoint& fp_;
  PointSet local_;                   // the members' rows and weights, node by node
  std::vector<uint32_t> index_;      // [position] the member's index in the caller's set
  std::vector<uint32_t> positions_;  // 0, 1, 2, ...
  std::vector<Keyed> keyed_;         // scratch, indexed by position
  std::vector<uint8_t> left_;        // scratch: [position] 1 if it goes to the left child
  std::vector<PartitionPiece> pieces_;
};

Partitioner::Partitioner(const PointSet& points, std::span<const uint32_t> members, int64_t k,
                         const FixedPoint& fp)
    : fp_(fp),
      index_(members.begin(), members.end()),
      positions_(members.size()),
      keyed_(members.size()),
      left_(members.size()),
      pieces_(static_cast<size_t>(k)) {
  const auto m = static_cast<int64_t>(members.size());
  const auto dim = static_cast<size_t>(points.dim);
  local_.dim = points.dim;
  local_.x.resize(members.size() * dim);
  local_.weight.resize(members.size());
#pragma omp parallel for schedule(static) if (m >= kParallelMinMembers)
  for (int64_t i = 0; i < m; ++i) {
    const std::span<const float> row = points.row(members[i]);
    std::copy(row.begin(), row.end(), local_.x.begin() + static_cast<ptrdiff_t>(i * dim));
    local_.weight[i] = points.weight[members[i]];
    positions_[i] = static_cast<uint32_t>(i);
  }
}

// Breadth-first, one level of the bisection tree at a time. Every node writes only
// its own range of positions and its own output slots, so the result is the same
// whichever thread handles which node.
std::vector<PartitionPiece> Partitioner::run() {
  std::vector<Node> level(1);
  level[0].end = static_cast<int64_t>(index_.size());
  level[0].k = static_cast<int64_t>(pieces_.size());
  sum_rows(level[0]);
  while (!level.empty()) {
    std::vector<Node> next(2 * level.size());
    const auto count = static_cast<int64_t>(level.size());
    if (count < omp_get_max_threads()) {
      // Too few nodes to keep every thread busy: parallelise inside each node.
      for (int64_t i = 0; i < count; ++i)
        split(level[i], true, &next[2 * i]);
    } else {
#pragma omp parallel for schedule(dynamic, 1)
      for (int64_t i = 0; i < count; ++i)
        split(level[i], false, &next[2 * i]);
    }
    std::erase_if(next, [](const Node& node) { return node.k == 0; });
    level = std::move(next);
  }
  return std::move(pieces_);
}

// Finishes a node as output pieces, or bisects it into children[0] (the sphere
// around the far point, floor(k/2) centroids) and children[1] (the rest). With
// `parallel`, a large node is split by all threads (exact_sums parallelises
// itself outside parallel regions).
void Partitioner::split(const Node& node, bool parallel, Node* children) {
  PGKM_ASSERT(node.size() >= node.k && node.k >= 1, "node of ", node.size(), " members owes ",
              node.k, " centroids");
  if (node.k == 1) return emit_leaf(node);
  if (node.size() == node.k) return emit_singletons(node);
  const bool wide = parallel && node.size() >= kParallelMinMembers;

  std::vector<float> centroid(static_cast<size_t>(local_.dim));
  for (size_t d = 0; d < centroid.size(); ++d)
    centroid[d] = fp_.mean(node.sums[d], node.weight);
  key_by_distance(node, centroid.data(), wide);
  const uint32_t far = wide ? far_point_parallel(node) : far_point(node);
  key_by_distance(node, local_.row(far).data(), wide);

  const int64_t k_left = node.k / 2;
  int64_t cut = 0;
  if (wide) {
    cut = select_cut_parallel(node, node.weight, k_left);
    move_left_first_parallel(node, cut);
  } else {
    cut = select_cut(node, node.weight, k_left);
    move_left_first(node, cut);
  }
  children[0] = Node{node.begin, node.begin + cut, k_left, node.first_piece, {}, 0};
  children[1] = Node{node.begin + cut, node.end, node.k - k_left, node.first_piece + k_left, {}, 0};
  sum_children(node, children);
}

// The smaller child's sums from its rows (with every thread outside parallel
// regions), the other's by difference.
void Partitioner::sum_children(const Node& parent, Node* children) const {
  Node& small = children[0].size() <= children[1].size() ? children[0] : children[1];
  Node& large = &small == &children[0] ? children[1] : children[0];
  sum_rows(small);
  large.sums.resize(parent.sums.size());
  for (size_t d = 0; d < parent.sums.size(); ++d)
    large.sums[d] = parent.sums[d] - small.sums[d];
  large.weight = parent.weight - small.weight;
}

// The position of the member farthest from the point keyed_ was keyed by; ties go
// to the lowest index.
uint32_t Partitioner::far_point(const Node& node) {
  Keyed best = keyed_[node.begin];
  for (int64_t i = node.begin + 1; i < node.end; ++i) {
    if (keyed_[i].farther_than(best)) best = keyed_[i];
  }
  return best.pos;
}

// far_point with every thread: the farthest of each chunk's farthest. "Farther"
// is a strict total order, so the winner does not depend on the chunks.
uint32_t Partitioner::far_point_parallel(const Node& node) {
  const int chunks = omp_get_max_threads();
  std::vector<Keyed> best(static_cast<size_t>(chunks), keyed_[node.begin]);
#pragma omp parallel for schedule(static, 1)
  for (int c = 0; c < chunks; ++c) {
    Keyed& b = best[static_cast<size_t>(c)];
    for (int64_t i = node.begin + chunk_begin(node.size(), chunks, c);
         i < node.begin + chunk_begin(node.size(), chunks, c + 1); ++i) {
      if (keyed_[i].farther_than(b)) b = keyed_[i];
    }
  }
  Keyed winner = best[0];
  for (const Keyed& b : best) {
    if (b.farther_than(winner)) winner = b;
  }
  return winner.pos;
}

// keyed_[begin, end) = the node's members keyed by squared distance to `center`.
void Partitioner::key_by_distance(const Node& node, const float* center, bool parallel) {
  const int dim = local_.dim;
#pragma omp parallel for schedule(static) if (parallel && node.size() >= kParallelMinMembers)
  for (int64_t i = node.begin; i < node.end; ++i) {
    keyed_[i] = Keyed{squared_distance(local_.row(i).data(), center, dim), index_[i],
                      static_cast<uint32_t>(i)};
  }
}

// The number of leading members (in (distance, index) order) that form the left
// child; leaves exactly those members in keyed_[begin, begin + cut).
// The prefix weight closest to weight * k_left / k is found comparing integers
// scaled by k, so ties are exact (and go to the shorter prefix).
int64_t Partitioner::select_cut(const Node& node, uint64_t weight, int64_t k_left) {
  const int64_t m = node.size();
  const auto k = static_cast<uint64_t>(node.k);
  const uint64_t target = weight * static_cast<uint64_t>(k_left);  // scaled by k
  Keyed* keyed = keyed_.data() + node.begin;
  // Each child needs at least as many members as centroids, so no piece is empty.
  const int64_t lowest = k_left;
  const int64_t highest = m - (node.k - k_left);

  if (weight == static_cast<uint64_t>(m)) {
    // Every weight is 1 (each is >= 1), so a prefix weighs its length and the cut is
    // known before any ordering: a single selection does.
    const uint64_t floor_cut = target / k;
    const int64_t cut = std::clamp(static_cast<int64_t>(floor_cut + (2 * (target % k) > k ? 1 : 0)),
                                   lowest, highest);
    std::nth_element(keyed, keyed + cut, keyed + m);
    return cut;
  }
  const int64_t closest = weighted_cut(keyed, m, target, node.k);
  const int64_t cut = std::clamp(closest, lowest, highest);
  // weighted_cut left the members around `closest` in order; a clamped cut moved
  // away from there, so select it within the untouched part.
  if (cut < closest) std::nth_element(keyed, keyed + cut, keyed + closest);
  if (cut > closest) std::nth_element(keyed + closest, keyed + cut, keyed + m);
  return cut;
}

// Weighted quickselect: the prefix length whose weight * k is closest to `target`
// (ties -> shorter), with keyed[0, result) holding the `result` smallest members
// and keyed[result, m) the rest. Each round halves the range with nth_element,
// so the whole search costs O(m).
int64_t Partitioner::weighted_cut(Keyed* keyed, int64_t m, uint64_t target, int64_t k) {
  const auto scale = static_cast<uint64_t>(k);
  const auto weight = [&](const Keyed& e) { return uint64_t{local_.weight[e.pos]}; };
  // Invariant: keyed[0, lo) < keyed[lo, hi) < keyed[hi, m) elementwise, and
  // weight(prefix lo) * k < target <= weight(prefix hi) * k.
  int64_t lo = 0;
  int64_t hi = m;
  uint64_t lo_weight = 0;
  while (hi - lo > kSortRange) {
    const int64_t mid = lo + (hi - lo) / 2;
    std::nth_element(keyed + lo, keyed + mid, keyed + hi);
    uint64_t mid_weight = lo_weight;
    for (int64_t i = lo; i < mid; ++i)
      mid_weight += weight(keyed[i]);
    if (mid_weight * scale >= target) {
      hi = mid;
    } else {
      lo = mid;
      lo_weight = mid_weight;
    }
  }
  std::sort(keyed + lo, keyed + hi);
  int64_t i = lo;
  uint64_t below = lo_weight;  // weight of the prefix of length i
  while (i < hi && (below + weight(keyed[i])) * scale < target)
    below += weight(keyed[i++]);
  PGKM_ASSERT(i < hi, "prefix weights never reach the target");
  const uint64_t above = below + weight(keyed[i]);  // weight of the prefix of length i + 1
  return target - below * scale <= above * scale - target ? i : i + 1;
}

// Reorders the node's rows so that the `cut` members selected into
// keyed_[begin, begin + cut) come first.
void Partitioner::move_left_first(const Node& node, int64_t cut) {
  for (int64_t i = node.begin; i < node.end; ++i) {
    left_[keyed_[i].pos] = i < node.begin + cut ? 1 : 0;
  }
  const int64_t front = partition_rows(node.begin, node.end);
  PGKM_ASSERT(front == node.begin + cut, "left child has ", front - node.begin, " rows, not ", cut);
}

// Moves the rows of [begin, end) marked in left_ before the others and returns
// where the others start. A two-sided in-place partition: both ends stream
// through memory and no second copy of the rows is needed.
int64_t Partitioner::partition_rows(int64_t begin, int64_t end) {
  int64_t front = begin;
  int64_t back = end - 1;
  while (true) {
    while (front <= back && left_[front])
      ++front;
    while (front <= back && !left_[back])
      --back;
    if (front >= back) break;
    swap_rows(front++, back--);
  }
  return front;
}

void Partitioner::swap_rows(int64_t a, int64_t b) {
  const auto dim = static_cast<ptrdiff_t>(local_.dim);
  const auto row = [&](int64_t i) { return local_.x.begin() + i * dim; };
  std::swap_ranges(row(a), row(a + 1), row(b));
  std::swap(local_.weight[a], local_.weight[b]);
  std::swap(index_[a], index_[b]);
  std::swap(left_[a], left_[b]);
}

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

void Partitioner::emit_leaf(const Node& node) {
  PartitionPiece& piece = pieces_[node.first_piece];
  piece.members.assign(index_.begin() + node.begin, index_.begin() + node.end);
  std::sort(piece.members.begin(), piece.members.end());
  piece.weight = node.weight;
  piece.centroid.resize(static_cast<size_t>(local_.dim));
  for (size_t d = 0; d < piece.centroid.size(); ++d)
    piece.centroid[d] = fp_.mean(node.sums[d], node.weight);
}

// As many members as centroids: each member is a piece, in ascending index order
// so that the output does not depend on the members' order.
void Partitioner::emit_singletons(const Node& node) {
  std::vector<uint32_t> by_index(positions_.begin() + node.begin, positions_.begin() + node.end);
  std::sort(by_index.begin(), by_index.end(),
            [&](uint32_t a, uint32_t b) { return index_[a] < index_[b]; });
  for (size_t i = 0; i < by_index.size(); ++i) {
    const uint32_t pos = by_index[i];
    PartitionPiece& piece = pieces_[node.first_piece + static_cast<int64_t>(i)];
    piece.members = {index_[pos]};
    piece.weight = local_.weight[pos];
    piece.centroid.resize(static_cast<size_t>(local_.dim));
    exact_mean(local_, std::span<const uint32_t>(&positions_[pos], 1), fp_, piece.centroid);
  }
}

// Whether every member is a valid, distinct index with weight >= 1 and finite
// coordinates (NaN would break the strict ordering by distance that selection
// relies on); sets their total weight. On all threads for large sets.
bool members_valid(const PointSet& points, std::span<const uint32_t> members,
                   uint64_t& total_weight) {
  const auto m = static_cast<int64_t>(members.size());
  std::vector<uint8_t> seen(static_cast<size_t>(points.size()), 0);
  bool ok = true;
  uint64_t total = 0;
#pragma omp parallel for schedule(static) reduction(&& : ok) reduction(+ : total) \
    if (m >= kParallelMinMembers)
  for (int64_t k = 0; k < m; ++k) {
    const uint32_t i = members[static_cast<size_t>(k)];
    if (i >= points.size() ||
        std::atomic_ref<uint8_t>(seen[i]).exchange(1, std::memory_order_relaxed) != 0 ||
        points.weight[i] == 0) {
      ok = false;
      continue;
    }
    total += points.weight[i];
    for (float v : points.row(i))
      ok = ok && std::isfinite(v);
  }
  total_weight = total;
  return ok;
}

// The error members_valid found, named for the first bad member in member order.
[[noreturn]] void throw_member_error(const PointSet& points, std::span<const uint32_t> members) {
  std::vector<bool> seen(static_cast<size_t>(points.size()), false);
  for (uint32_t i : members) {
    PGKM_EXPECTS(i < points.size(), kContext, "member index ", i, " >= number of points ",
                 points.size());
    PGKM_EXPECTS(!seen[i], kContext, "member index ", i, " appears more than once");
    seen[i] = true;
    PGKM_EXPECTS(points.weight[i] >= 1, kContext, "point ", i, " has weight 0");
    for (float v : points.row(i)) {
      PGKM_EXPECTS(std::isfinite(v), kContext, "point ", i, " has a non-finite coordinate ", v);
    }
  }
  PGKM_ASSERT(false, "members_valid found no error");
  std::abort();
}

// Checks everything the bisection relies on, so that a bad call fails with an
// InputError before any work (and never inside a parallel region).
void validate(const PointSet& points, std::span<const uint32_t> members, int64_t k) {
  const auto m = static_cast<int64_t>(members.size());
  PGKM_EXPECTS(k >= 1 && k <= m, kContext, "k=", k, " must be in [1, ", m,
               "] (the number of members)");
  PGKM_EXPECTS(points.dim >= 1, kContext, "point dimension ", points.dim, " must be >= 1");
  PGKM_EXPECTS(points.x.size() == static_cast<size_t>(points.size()) * points.dim, kContext,
               "point set has ", points.x.size(), " coordinates for ", points.size(),
               " points of dimension ", points.dim);
  uint64_t total_weight = 0;
  if (!members_valid(points, members, total_weight)) throw_member_error(points, members);
  // Prefix weights are compared to targets scaled by a node's k.
  PGKM_EXPECTS(total_weight <= std::numeric_limits<uint64_t>::max() / static_cast<uint64_t>(k),
               kContext, "total weight ", total_weight, " times k=", k, " overflows 64 bits");
}

}  // namespace

std::vector<PartitionPiece> partition_guided(const PointSet& points,
                                             std::span<const uint32_t> members, int64_t k,
                                             const FixedPoint& fp) {
  validate(points, members, k);
  return Partitioner(points, members, k, fp).run();
}

}  // namespace pgkm
