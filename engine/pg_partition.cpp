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
#include "engine/pg_partition_internal.h"
#include "engine/with_dim.h"

namespace pgkm {
namespace partition {
namespace {

constexpr const char* kContext = "partition_guided";

// Squared Euclidean distance in double, summed over the dimensions in order with
// no fused multiply-add, so every backend and thread count gets the same bits.
// Dim > 0 fixes the dimension at compile time (the same operations, unrolled).
template <int Dim = 0>
double squared_distance(const float* a, const float* b, int dim) {
  if constexpr (Dim > 0) dim = Dim;
  double sum = 0.0;
  for (int j = 0; j < dim; ++j) {
    const double t = static_cast<double>(a[j]) - static_cast<double>(b[j]);
    sum += t * t;
  }
  return sum;
}

}  // namespace

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
  const uint32_t far = far_point(node, centroid.data(), wide);
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

// The farthest of the node's members [first, last) from `center`, by squared distance
// (ties to the lowest index). Nothing is stored: only the far point is kept.
Keyed Partitioner::farthest(int64_t first, int64_t last, const float* center) const {
  const int dim = local_.dim;
  return with_dim(dim, [&]<int Dim>() {
    const float* rows = local_.x.data();
    Keyed best{squared_distance<Dim>(rows + first * dim, center, dim), index_[first],
               static_cast<uint32_t>(first)};
    for (int64_t i = first + 1; i < last; ++i) {
      const Keyed e{squared_distance<Dim>(rows + i * dim, center, dim), index_[i],
                    static_cast<uint32_t>(i)};
      if (e.farther_than(best)) best = e;
    }
    return best;
  });
}

// The position of the member farthest from `center`; with `parallel`, a large node is
// scanned by every thread, the farthest of each chunk's farthest ("farther" is a
// strict total order, so the winner does not depend on the chunks).
uint32_t Partitioner::far_point(const Node& node, const float* center, bool parallel) const {
  if (!parallel || node.size() < kParallelMinMembers) {
    return farthest(node.begin, node.end, center).pos;
  }
  const int chunks = omp_get_max_threads();
  std::vector<Keyed> best(static_cast<size_t>(chunks));
#pragma omp parallel for schedule(static, 1)
  for (int c = 0; c < chunks; ++c) {
    best[static_cast<size_t>(c)] =
        farthest(node.begin + chunk_begin(node.size(), chunks, c),
                 node.begin + chunk_begin(node.size(), chunks, c + 1), center);
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
  with_dim(dim, [&]<int Dim>() {
    const float* rows = local_.x.data();
#pragma omp parallel for schedule(static) if (parallel && node.size() >= kParallelMinMembers)
    for (int64_t i = node.begin; i < node.end; ++i) {
      keyed_[i] = Keyed{squared_distance<Dim>(rows + i * dim, center, dim), index_[i],
                        static_cast<uint32_t>(i)};
    }
  });
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
  const auto dim = static_cast<int64_t>(local_.dim);
  float* x = local_.x.data();
  // A plain loop: std::swap_ranges of a short row is a call per row.
  for (int64_t d = 0; d < dim; ++d)
    std::swap(x[a * dim + d], x[b * dim + d]);
  std::swap(local_.weight[a], local_.weight[b]);
  std::swap(index_[a], index_[b]);
  std::swap(left_[a], left_[b]);
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

namespace {

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
}  // namespace partition

std::vector<PartitionPiece> partition_guided(const PointSet& points,
                                             std::span<const uint32_t> members, int64_t k,
                                             const FixedPoint& fp) {
  partition::validate(points, members, k);
  return partition::Partitioner(points, members, k, fp).run();
}

}  // namespace pgkm
