// The k-means of iPQ with Quant-Noise, as fairseq implements it
// (fairseq/modules/quantization/pq/em.py): the paper's baseline.
#pragma once

#include <span>
#include <vector>

#include "engine/cluster_state.h"
#include "engine/kmeans.h"
#include "engine/rng.h"

namespace pgkm {

// fairseq's initialize_centroids: K of the n input vectors drawn uniformly at random
// with replacement (duplicate centroids possible). `source_to_point` maps each input
// vector to its distinct point. Returns [K, dim].
std::vector<float> ipq_initial_centroids(const PointSet& points,
                                         std::span<const uint32_t> source_to_point, int64_t k,
                                         Rng& rng);

// fairseq's resolve_empty_clusters: while a cluster is empty, pick one at random,
// split the most populated cluster m into two by c_k = c_m + e, c_m -= e with
// e ~ N(0, eps^2) per coordinate, and reassign every point; at most max_tries tries.
ResolutionOutcome ipq_resolve_empty(ClusterState& state, const IpqParams& params, Rng& rng);

}  // namespace pgkm
