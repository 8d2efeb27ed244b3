#include "engine/pg_finetune.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <deque>

#include "engine/pg_partition.h"

namespace pgkm {
namespace {

// Members of every cluster in `wanted`, by one counting pass over the codes.
// Members come out in ascending point order.
std::vector<std::vector<uint32_t>> members_of(const ClusterState& state,
                                              const std::vector<int64_t>& wanted) {
  std::vector<int32_t> slot(static_cast<size_t>(state.k), -1);
  for (size_t i = 0; i < wanted.size(); ++i)
    slot[static_cast<size_t>(wanted[i])] = static_cast<int32_t>(i);
  std::vector<std::vector<uint32_t>> members(wanted.size());
  for (size_t p = 0; p < state.codes.size(); ++p) {
    const int32_t s = slot[state.codes[p]];
    if (s >= 0) members[static_cast<size_t>(s)].push_back(static_cast<uint32_t>(p));
  }
  return members;
}

// Number of sub-clusters a populous cluster of weight n_lc is split into.
// Eq. 1: S_scl = max(sqrt(n_lc * S_avg), S_avg). Algorithm 1 called with target
// S_scl keeps halving while a node holds more than S_scl + 1 weights, which makes
// ceil(n_lc / S_scl) pieces; a cluster of at most S_scl + 1 is left whole.
int64_t pieces_for(double n_lc, double s_avg) {
  const double s_scl = std::max(std::sqrt(n_lc * s_avg), s_avg);
  if (n_lc <= s_scl + 1.0) return 1;
  return static_cast<int64_t>(std::ceil(n_lc / s_scl));
}

// One round of Algorithm 2 (lines 5-21): choose the populous clusters, split each
// into pieces, put the pieces' centroids into the empty slots and the populous
// cluster's own slot. Returns false when there is nothing to split.
bool split_populous_clusters(ClusterState& state) {
  const double layer_average =
      static_cast<double>(state.points.total_weight()) / static_cast<double>(state.k);
  std::deque<int64_t> free_slots;  // C_e, ascending
  std::vector<int64_t> populous;   // clusters larger than the layer-wide average
  double populous_weight = 0;      // n_w
  for (int64_t j = 0; j < state.k; ++j) {
    const double n = static_cast<double>(state.counts[static_cast<size_t>(j)]);
    if (n == 0) free_slots.push_back(j);
    if (n > layer_average) {
      populous.push_back(j);
      populous_weight += n;
    }
  }
  if (populous.empty() || free_slots.empty()) return false;
  // M_c: largest first; equal sizes by index so the order never depends on chance.
  std::sort(populous.begin(), populous.end(), [&](int64_t a, int64_t b) {
    const uint64_t ca = state.counts[static_cast<size_t>(a)];
    const uint64_t cb = state.counts[static_cast<size_t>(b)];
    return ca != cb ? ca > cb : a < b;
  });
  // Line 13: the adjusted average over the clusters to be reassigned (C_ra = empty + populous).
  const double s_avg =
      std::max(populous_weight / static_cast<double>(free_slots.size() + populous.size()), 1.0);

  const auto members = members_of(state, populous);
  const size_t dim = static_cast<size_t>(state.dim);
  bool split_any = false;
  for (size_t i = 0; i < populous.size() && !free_slots.empty(); ++i) {
    const double n_lc = static_cast<double>(state.counts[static_cast<size_t>(populous[i])]);
    // Slots run out before the list does when many clusters are populous ("return
    // when achieved the last index of C"): the biggest clusters are split first.
    const int64_t k =
        std::min({pieces_for(n_lc, s_avg), static_cast<int64_t>(free_slots.size()) + 1,
                  static_cast<int64_t>(members[i].size())});
    if (k < 2) continue;
    const auto pieces = partition_guided(state.points, members[i], k, state.fp);
    // The last piece is the reserved centroid (B_rl = true): it takes the populous
    // cluster's own slot; the others fill empty slots in ascending order.
    for (int64_t p = 0; p < k; ++p) {
      int64_t slot = populous[i];
      if (p + 1 < k) {
        slot = free_slots.front();
        free_slots.pop_front();
      }
      std::memcpy(state.centroids.data() + static_cast<size_t>(slot) * dim,
                  pieces[static_cast<size_t>(p)].centroid.data(), dim * sizeof(float));
    }
    split_any = true;
  }
  return split_any;
}

}  // namespace

ResolutionOutcome pg_finetune(ClusterState& state, const PgParams& params) {
  ResolutionOutcome outcome;
  int64_t empty = state.count_empty();
  while (empty > 0 && outcome.rounds < params.max_rounds) {
    if (!split_populous_clusters(state)) break;
    state.reassign();
    ++outcome.rounds;
    const int64_t now = state.count_empty();
    // Line 4, "break early when the number of empty clusters stops decreasing":
    // one round without progress ends the resolution for this iteration. The state
    // of that round is kept (no rollback): the next iteration's update and
    // assignment start from it, as k-means would from any split.
    const bool progressed = now < empty;
    empty = now;
    if (!progressed) break;
  }
  return outcome;
}

}  // namespace pgkm
