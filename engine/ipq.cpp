#include "engine/ipq.h"

#include <algorithm>
#include <cstring>

#include "core/errors.h"

namespace pgkm {

std::vector<float> ipq_initial_centroids(const PointSet& points,
                                         std::span<const uint32_t> source_to_point, int64_t k,
                                         Rng& rng) {
  const size_t dim = static_cast<size_t>(points.dim);
  std::vector<float> centroids(static_cast<size_t>(k) * dim);
  for (int64_t j = 0; j < k; ++j) {
    // torch.randint(0, n, (K,)): every input vector equally likely, repeats allowed.
    const uint64_t source = rng.uniform_below(source_to_point.size());
    const auto row = points.row(source_to_point[source]);
    std::memcpy(centroids.data() + static_cast<size_t>(j) * dim, row.data(), dim * sizeof(float));
  }
  return centroids;
}

namespace {

// fairseq takes counts.most_common(1); a tie there goes to the cluster met first in
// assignment order. We break ties by the lowest cluster index, which does not
// depend on how points are ordered or sharded.
int64_t most_populated(const std::vector<uint64_t>& counts) {
  return std::max_element(counts.begin(), counts.end()) - counts.begin();
}

std::vector<int64_t> empty_clusters(const std::vector<uint64_t>& counts) {
  std::vector<int64_t> empty;
  for (size_t j = 0; j < counts.size(); ++j) {
    if (counts[j] == 0) empty.push_back(static_cast<int64_t>(j));
  }
  return empty;
}

}  // namespace

ResolutionOutcome ipq_resolve_empty(ClusterState& state, const IpqParams& params, Rng& rng) {
  ResolutionOutcome outcome;
  const size_t dim = static_cast<size_t>(state.dim);
  std::vector<int64_t> empty = empty_clusters(state.counts);
  // fairseq checks `tentatives == max_tentatives` after a try and raises even when
  // that try emptied the list, so it makes max_tentatives + 1 tries. We make at most
  // max_tries tries and give up only if clusters are still empty after them.
  while (!empty.empty()) {
    if (outcome.rounds == params.max_tries) {
      outcome.gave_up = true;
      break;
    }
    // random.choice over the empty clusters, here in ascending index order.
    const int64_t k = empty[rng.uniform_below(empty.size())];
    const int64_t m = most_populated(state.counts);
    float* ck = state.centroids.data() + static_cast<size_t>(k) * dim;
    float* cm = state.centroids.data() + static_cast<size_t>(m) * dim;
    for (size_t d = 0; d < dim; ++d) {
      const float e = static_cast<float>(rng.normal()) * params.eps;
      ck[d] = cm[d] + e;
      cm[d] -= e;
    }
    state.reassign();
    empty = empty_clusters(state.counts);
    ++outcome.rounds;
  }
  return outcome;
}

}  // namespace pgkm
