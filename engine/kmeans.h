// The k-means driver: one loop for all three algorithms (docs/CONVENTIONS.md #1).
//
//   ipq      fairseq's EM (iPQ with Quant-Noise): random init with replacement,
//            Lloyd iterations, the mixed epsilon-greedy / epsilon-random empty
//            cluster resolution (engine/ipq.cpp).
//   pg-base  Partitioning-Guided Pre-assignment (engine/pg_partition.h) and
//            Partitioning-Guided Cluster Fine-tuning (engine/pg_finetune.h).
//   pg       pg-base on the points left by Dense Weights Consolidation
//            (engine/dwc.h); codes are mapped back to every weight at the end.
//
// Each iteration: assign every point to its nearest centroid, resolve empty
// clusters, set every non-empty centroid to the mean of its points. As in
// fairseq, the codes returned are those of the last assignment and the centroids
// those of the last update (each centroid is the exact mean of its points).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "engine/context.h"
#include "engine/dwc.h"
#include "engine/layer_stats.h"
#include "kernels/backend.h"

namespace pgkm {

enum class Algorithm { kIpq, kPgBase, kPg };

const char* algorithm_name(Algorithm a);  // "ipq", "pg-base", "pg"
// Parses a name; throws InputError listing the valid names.
Algorithm parse_algorithm(const std::string& name);
// Parses a name algorithm_name gives; nullopt for anything else.
std::optional<Algorithm> try_parse_algorithm(std::string_view name);

struct IpqParams {
  // Scale of the Gaussian perturbation that splits the most populated cluster.
  float eps = 1e-6f;
  // Resolution tries per iteration (quantize_model_ passes 100). One empty cluster
  // per try; every try reassigns all points.
  int max_tries = 100;
};

struct PgParams {
  // Partitioning-Guided Cluster Fine-tuning rounds per iteration (paper Section 5).
  int max_rounds = 15;
};

struct KMeansParams {
  Algorithm algorithm = Algorithm::kPg;
  int64_t n_centroids = 256;  // K
  int iterations = 15;        // fixed count, no convergence test (fairseq)
  uint64_t seed = 0;          // global seed; combined with the layer name
  IpqParams ipq;
  PgParams pg;
  DwcParams dwc;  // used by Algorithm::kPg only
};

// The statistics of the run (engine/layer_stats.h) and its codebook and codes.
struct KMeansResult : LayerStats {
  std::vector<float> centroids;  // [K, b]
  std::vector<uint32_t> codes;   // [n] code of every input vector
  std::vector<uint64_t> counts;  // [K] input vectors per code
  DwcResult dwc;                 // pg only: consolidation figures (points/mapping cleared)
};

// Called after every iteration (progress output); may be empty.
using IterationCallback = std::function<void(const IterationStats&)>;

// Clusters `vectors` ([n, dim] row-major, finite) into params.n_centroids centroids.
// `layer` names the layer in errors and seeds its random streams. Throws InputError
// for K < 1, K > n, iterations < 0, non-finite values or a dim outside 1..32: this is
// the engine's entry for raw vectors, so the values are checked here, once.
//
// When the context's group has several ranks, every rank calls this with the same
// arguments; each assigns its slice of the points and the group adds up sums and counts,
// so every rank returns the same result, bit for bit the one a single rank computes.
//
// vector_weights: empty (every vector counts once), or [n] integer weights >= 1: the
// k-means then minimizes sum_i w_i |x_i - c(i)|^2, exactly as if vector i were there
// w_i times (deduplication adds the weights of identical vectors). `counts` stay the
// number of vectors per code; `objective` is the weighted error.
KMeansResult run_kmeans(const EngineContext& context, const KMeansParams& params,
                        const std::string& layer, std::span<const float> vectors, int dim,
                        const IterationCallback& on_iteration = {},
                        std::span<const uint32_t> vector_weights = {});

}  // namespace pgkm
