// Which rank runs which layer.
//
// Layers whose cost exceeds shard_threshold times a fair share (total / ranks) would
// dominate the job's length on one rank: every rank runs them together, each assigning a
// slice of the points. The rest go to ranks longest processing time first: biggest layer
// first, to the least-loaded rank. A static plan (rather than a rank-0 work queue) lets
// rank 0 cluster too, which on a small node is half of the machine, and every rank
// computes the same plan without messages.
#pragma once

#include <cstddef>
#include <span>
#include <vector>

namespace pgkm {

struct Schedule {
  std::vector<size_t> shared;                // layers run by every rank, in plan order
  std::vector<std::vector<size_t>> by_rank;  // the rest, per rank, longest first
};

// costs: [layers] the work of each layer (engine/size_plan.h clustering_cost), in plan
// order. ranks >= 1. With one rank nothing is shared and the plan order is kept (there is
// nothing to balance). Ties in cost keep plan order; ties in load go to the lowest rank.
Schedule schedule_layers(std::span<const double> costs, int ranks, double shard_threshold);

}  // namespace pgkm
