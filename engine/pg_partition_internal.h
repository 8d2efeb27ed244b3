// Internals of Partitioning-Guided Pre-assignment (engine/pg_partition.h), shared by
// the bisection (pg_partition.cpp) and its parallel selection for large nodes
// (pg_partition_parallel.cpp). Not part of the engine's interface.
#pragma once

#include <bit>
#include <cstdint>
#include <span>
#include <vector>

#include "engine/chunks.h"
#include "engine/pg_partition.h"

namespace pgkm::partition {

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
  uint32_t far_point(const Node& node, const float* center, bool parallel) const;
  Keyed farthest(int64_t first, int64_t last, const float* center) const;
  void key_by_distance(const Node& node, const float* center, bool parallel);
  int64_t select_cut(const Node& node, uint64_t weight, int64_t k_left);
  int64_t weighted_cut(Keyed* keyed, int64_t m, uint64_t target, int64_t k);
  void move_left_first(const Node& node, int64_t cut);
  // Parallel counterparts for one large node, used while there are fewer nodes
  // than threads. They find the same cut and the same left child.
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

}  // namespace pgkm::partition
