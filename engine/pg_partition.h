// Partitioning-Guided Pre-assignment (paper Algorithm 1, CENTROIDPARTITIONING).
//
// Recursive spherical bisection: a node's points are ordered by distance to the
// point farthest from the node's mean, and the sphere around that far point takes
// the first "closest integral multiple of S_avg to half the node's weight".
//
// Our formulation carries the number of centroids k owed to each node instead of a
// global S_avg: S_avg of a node is its weight / k, the left child gets
// floor(k/2) centroids and the prefix whose cumulative weight is closest to
// weight * floor(k/2) / k. This yields exactly k pieces for any n and k (the
// paper's global S_avg does so only when k divides n), and every piece holds at
// least one point. The same routine splits populous clusters in
// Partitioning-Guided Cluster Fine-tuning (Algorithm 2, engine/pg_finetune.cpp).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "engine/points.h"

namespace pgkm {

struct PartitionPiece {
  std::vector<uint32_t> members;  // indices into the PointSet, in ascending order
  uint64_t weight = 0;            // sum of the members' weights
  std::vector<float> centroid;    // [dim] exact weighted mean of the members
};

// Splits `members` (distinct indices into `points`) into exactly k pieces.
// Precondition: 1 <= k <= members.size(). The result depends only on the set of
// members, never on their order or on the number of threads.
//
// A node's far point is the member with the largest squared distance (in double) to
// the node's exact mean, and its members are ordered by (squared distance to the far
// point, index); every tie goes to the lower point index, and a tie between two cuts
// equally close to the target goes to the shorter prefix. The cut is clamped so that
// each child has at least as many members as centroids. Pieces are listed depth
// first, the sphere around the far point before the rest. A node with as many
// members as centroids gives one piece per member, in ascending index order.
//
// Throws InputError unless 1 <= k <= members.size(), every member is a distinct
// valid index, every member's weight is >= 1 and its coordinates are finite, and
// total weight * k fits in 64 bits. Works on a private copy of the members' rows
// (about members.size() * (4 * dim + 29) bytes) so that every pass reads memory in
// order.
std::vector<PartitionPiece> partition_guided(const PointSet& points,
                                             std::span<const uint32_t> members, int64_t k,
                                             const FixedPoint& fp);

}  // namespace pgkm
