#include "pipeline/scheduler.h"

#include <algorithm>

#include "core/errors.h"

namespace pgkm {

Schedule schedule_layers(std::span<const double> costs, int ranks, double shard_threshold) {
  PGKM_ASSERT(ranks >= 1, "ranks ", ranks);
  Schedule s;
  s.by_rank.resize(static_cast<size_t>(ranks));
  double total = 0;
  for (double c : costs)
    total += c;
  std::vector<size_t> order;
  for (size_t i = 0; i < costs.size(); ++i) {
    if (ranks > 1 && costs[i] > shard_threshold * total / ranks) {
      s.shared.push_back(i);
    } else {
      order.push_back(i);
    }
  }
  if (ranks > 1) {
    std::stable_sort(order.begin(), order.end(),
                     [&](size_t a, size_t b) { return costs[a] > costs[b]; });
  }
  std::vector<double> load(static_cast<size_t>(ranks), 0.0);
  for (size_t i : order) {
    const size_t r = static_cast<size_t>(std::min_element(load.begin(), load.end()) - load.begin());
    load[r] += costs[i];
    s.by_rank[r].push_back(i);
  }
  return s;
}

}  // namespace pgkm
