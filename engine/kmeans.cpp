#include "engine/kmeans.h"

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>

#include "core/enum_names.h"
#include "core/errors.h"
#include "engine/ipq.h"
#include "engine/pg_finetune.h"
#include "engine/pg_partition.h"
#include "engine/rng.h"
#include "engine/with_dim.h"
#include "kernels/cuda/cuda_backend.h"

namespace pgkm {

namespace {
constexpr EnumNames<Algorithm, 3> kAlgorithmNames{
    {{{Algorithm::kIpq, "ipq"}, {Algorithm::kPgBase, "pg-base"}, {Algorithm::kPg, "pg"}}}};
}  // namespace

const char* algorithm_name(Algorithm a) {
  return kAlgorithmNames.name(a);
}

std::optional<Algorithm> try_parse_algorithm(std::string_view name) {
  return kAlgorithmNames.parse(name);
}

Algorithm parse_algorithm(const std::string& name) {
  if (const auto a = try_parse_algorithm(name)) return *a;
  throw InputError("algorithm",
                   str_cat("unknown algorithm '", name, "'; expected pg, pg-base or ipq"));
}

ClusterState::ClusterState(Backend& backend_, const ResidentPoints& resident_,
                           const PointSet& points_, const FixedPoint& fp_, int64_t k_,
                           Communicator& group_, ShardRange shard_, SearchMode search_)
    : backend(backend_),
      resident(resident_),
      group(group_),
      shard(shard_),
      points(points_),
      fp(fp_),
      k(k_),
      dim(points_.dim),
      search(search_),
      device_reduce(device_reduction(backend_, group_)) {
  centroids.resize(static_cast<size_t>(k) * static_cast<size_t>(dim));
  codes.resize(static_cast<size_t>(points.size()));
  local_codes.resize(static_cast<size_t>(shard.size()));
  local_dist.resize(static_cast<size_t>(shard.size()));
  sums.resize(static_cast<size_t>(k) * static_cast<size_t>(dim));
  counts.resize(static_cast<size_t>(k));
}

void ClusterState::reassign() {
  SearchStats pass;
  if (device_reduce != nullptr) {
    reassign_on_device(*device_reduce);
    const int64_t n = resident.size();
    pass = {n, k, n * k, n * k, n};  // the CUDA backend scores every centroid
  } else if (search == SearchMode::kPruned && have_codes) {
    // The previous assignment is the starting point; codes are updated in place, and
    // no distances are asked for (nothing reads them), so only moved points are written.
    backend.assign_accumulate_pruned(resident, centroids, local_codes, fp, local_codes, {}, sums,
                                     counts, pass);
  } else {
    backend.assign_accumulate(resident, centroids, fp, local_codes, local_dist, sums, counts);
    const int64_t n = resident.size();
    pass = {n, k, n * k, n * k, n};
  }
  have_codes = true;
  search_stats.points += pass.points;
  search_stats.centroids = pass.centroids;
  search_stats.scored += pass.scored;
  search_stats.full += pass.full;
  search_stats.brute_force += pass.brute_force;
  if (device_reduce == nullptr) {
    group.allreduce_sum(sums);
    group.allreduce_sum(counts);
  }
  group.allgather(local_codes, codes);
}

CudaBackend* device_reduction(Backend& backend, const Communicator& group) {
  auto* cuda = dynamic_cast<CudaBackend*>(&backend);
  if (cuda == nullptr || !group.reduces_on_device(cuda->stream().device)) return nullptr;
  return cuda;
}

void ClusterState::reassign_on_device(CudaBackend& cuda) {
  // Codes, sums and counts stay on the device; the group adds up the sums and counts
  // there, on the backend's stream, so only the reduced totals and this rank's codes
  // come back, in one download. The integers are exact, so the totals (and everything
  // the host computes from them) are the bits of the host path.
  cuda.set_centroids(centroids, dim);
  cuda.assign_resident(resident, &fp);
  const CudaResidentSums on_device = cuda.resident_sums();
  PGKM_ASSERT(on_device.k == k && on_device.dim == dim);
  const DeviceIntegers buffers[] = {
      {on_device.sums, sums.size(), DeviceIntegers::Type::kInt64},
      {on_device.counts, counts.size(), DeviceIntegers::Type::kUint64},
  };
  const CudaStreamHandle stream = cuda.stream();
  group.allreduce_sum_device(buffers, {stream.stream, stream.device});
  CudaDownload out;
  out.codes = local_codes;
  out.sums = sums;
  out.counts = counts;
  cuda.download(out);
}

void ClusterState::adopt_codes() {
  std::copy(codes.begin() + shard.begin, codes.begin() + shard.end, local_codes.begin());
  have_codes = true;
}

int64_t ClusterState::count_empty() const {
  return std::count(counts.begin(), counts.end(), uint64_t{0});
}

void ClusterState::update_means() {
  const size_t d = static_cast<size_t>(dim);
  for (size_t j = 0; j < static_cast<size_t>(k); ++j) {
    if (counts[j] == 0) continue;
    for (size_t c = 0; c < d; ++c)
      centroids[j * d + c] = fp.mean(sums[j * d + c], counts[j]);
  }
}

namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

void validate(const KMeansParams& p, const std::string& layer, std::span<const float> v, int dim,
              std::span<const uint32_t> weights) {
  check_points(v, {}, dim, layer);
  const int64_t n = static_cast<int64_t>(v.size()) / dim;
  PGKM_EXPECTS(n > 0, layer, "no vectors to cluster (zero-size tensor)");
  if (!weights.empty()) {
    PGKM_EXPECTS(weights.size() == static_cast<size_t>(n), layer, weights.size(),
                 " vector weights given for ", n, " vectors");
    const auto zero = std::find(weights.begin(), weights.end(), 0u);
    PGKM_EXPECTS(zero == weights.end(), layer, "vector ", zero - weights.begin(),
                 " has weight 0, expected >= 1");
  }
  PGKM_EXPECTS(p.n_centroids >= 1, layer, "number of centroids ", p.n_centroids, " must be >= 1");
  PGKM_EXPECTS(p.n_centroids <= n, layer, "number of centroids ", p.n_centroids,
               " exceeds the number of vectors ", n);
  PGKM_EXPECTS(p.n_centroids <= (int64_t{1} << 32), layer, "number of centroids ", p.n_centroids,
               " exceeds 2^32");
  PGKM_EXPECTS(p.iterations >= 0, layer, "iteration count ", p.iterations, " is negative");
}

// Sum over the distinct points of weight * |x - c(code)|^2, in double. Partial sums
// over fixed chunks of points, added in chunk order: the same bits for any thread count.
// The objective's terms over points [first, last) of one chunk, in point order: per
// point, the squared distance summed over the dimensions in order, times the weight.
// Dim > 0 fixes the dimension at compile time (the same operations, unrolled).
template <int Dim, typename CodeOf>
double chunk_objective(const PointSet& points, const CodeOf& code_of,
                       std::span<const float> centroids, int64_t first, int64_t last) {
  const size_t dim = Dim > 0 ? size_t{Dim} : static_cast<size_t>(points.dim);
  double s = 0;
  for (int64_t i = first; i < last; ++i) {
    const float* x = points.x.data() + static_cast<size_t>(i) * dim;
    const float* m = centroids.data() + static_cast<size_t>(code_of(i)) * dim;
    double e = 0;
    for (size_t d = 0; d < dim; ++d) {
      const double t = static_cast<double>(x[d]) - static_cast<double>(m[d]);
      e += t * t;
    }
    s += e * points.weight[static_cast<size_t>(i)];
  }
  return s;
}

// Sum over points of weight * |x - centroid(code)|^2 in double: fixed chunks summed in
// chunk order, so the bits do not depend on the thread count. code_of(i) is point i's
// code.
template <typename CodeOf>
double objective_by(const PointSet& points, const CodeOf& code_of,
                    std::span<const float> centroids) {
  constexpr int64_t kChunk = 4096;
  const int64_t n = points.size();
  const int64_t chunks = (n + kChunk - 1) / kChunk;
  std::vector<double> partial(static_cast<size_t>(chunks));
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < chunks; ++c) {
    const int64_t first = c * kChunk;
    const int64_t last = std::min(n, first + kChunk);
    const double s = with_dim(points.dim, [&]<int Dim>() {
      return chunk_objective<Dim>(points, code_of, centroids, first, last);
    });
    partial[static_cast<size_t>(c)] = s;
  }
  double total = 0;
  for (double s : partial)
    total += s;
  return total;
}

double objective_of(const PointSet& points, std::span<const uint32_t> codes,
                    std::span<const float> centroids) {
  return objective_by(
      points, [&](int64_t i) { return codes[static_cast<size_t>(i)]; }, centroids);
}

// objective_of the distinct points with the codes the state gives them (through
// consolidated_index when pg clustered consolidated points), without a codes array.
double objective_of_distinct(const PointSet& distinct, const ClusterState& state,
                             const std::vector<uint32_t>& consolidated_index) {
  if (consolidated_index.empty()) return objective_of(distinct, state.codes, state.centroids);
  return objective_by(
      distinct, [&](int64_t i) { return state.codes[consolidated_index[static_cast<size_t>(i)]]; },
      state.centroids);
}

// Initial centroids by the algorithm's rule; returns the initial number of empty clusters.
int64_t initialize(ClusterState& state, const KMeansParams& params, const std::string& layer,
                   std::span<const uint32_t> source_to_point) {
  if (params.algorithm == Algorithm::kIpq) {
    Rng rng(params.seed, layer, "ipq-init");
    state.centroids = ipq_initial_centroids(state.points, source_to_point, state.k, rng);
    state.reassign();
    return state.count_empty();
  }
  // Partitioning-Guided Pre-assignment over all distinct points. With fewer distinct
  // points than centroids only that many pieces exist; the surplus centroids copy
  // the first piece's (ties go to the lowest index, so they start empty).
  const int64_t n = state.points.size();
  std::vector<uint32_t> all(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i)
    all[static_cast<size_t>(i)] = static_cast<uint32_t>(i);
  const int64_t pieces_wanted = std::min(state.k, n);
  const auto pieces = partition_guided(state.points, all, pieces_wanted, state.fp);
  const size_t dim = static_cast<size_t>(state.dim);
  for (int64_t j = 0; j < state.k; ++j) {
    const auto& src = pieces[static_cast<size_t>(j < pieces_wanted ? j : 0)];
    std::memcpy(state.centroids.data() + static_cast<size_t>(j) * dim, src.centroid.data(),
                dim * sizeof(float));
  }
  // The initial state is the partition itself: piece j is cluster j.
  std::fill(state.counts.begin(), state.counts.end(), 0);
#pragma omp parallel for schedule(dynamic, 64)
  for (int64_t j = 0; j < pieces_wanted; ++j) {
    for (uint32_t m : pieces[static_cast<size_t>(j)].members)
      state.codes[m] = static_cast<uint32_t>(j);
    state.counts[static_cast<size_t>(j)] = pieces[static_cast<size_t>(j)].weight;
  }
  // The first pass starts from the pieces: the pruned search needs no brute-force pass.
  state.adopt_codes();
  return state.count_empty();
}

// The code of every distinct point: its own code, or its consolidated point's code.
std::vector<uint32_t> codes_of_distinct(const ClusterState& state, int64_t n_distinct,
                                        const std::vector<uint32_t>& consolidated_index) {
  std::vector<uint32_t> codes(static_cast<size_t>(n_distinct));
  const auto n = static_cast<int64_t>(codes.size());
#pragma omp parallel for schedule(static)
  for (int64_t p = 0; p < n; ++p) {
    const auto i = static_cast<size_t>(p);
    codes[i] = consolidated_index.empty() ? state.codes[i] : state.codes[consolidated_index[i]];
  }
  return codes;
}

// codes[i] = point_codes[point_of[i]] for every input vector.
std::vector<uint32_t> map_codes(std::span<const uint32_t> point_of,
                                std::span<const uint32_t> point_codes) {
  std::vector<uint32_t> codes(point_of.size());
  const auto n = static_cast<int64_t>(codes.size());
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i)
    codes[static_cast<size_t>(i)] = point_codes[point_of[static_cast<size_t>(i)]];
  return codes;
}

// How many codes name each of the k centroids: per-thread integer histograms over fixed
// chunks, added up (the same counts for any thread count).
std::vector<uint64_t> code_counts(std::span<const uint32_t> codes, int64_t k) {
  const auto width = static_cast<size_t>(k);
  std::vector<uint64_t> counts(width, 0);
#pragma omp parallel
  {
    std::vector<uint64_t> mine(width, 0);
#pragma omp for schedule(static) nowait
    for (int64_t i = 0; i < static_cast<int64_t>(codes.size()); ++i)
      ++mine[codes[static_cast<size_t>(i)]];
#pragma omp critical
    for (size_t j = 0; j < width; ++j)
      counts[j] += mine[j];
  }
  return counts;
}

// Makes this rank's slice of `points` resident.
std::unique_ptr<ResidentPoints> upload_slice(Backend& backend, const PointSet& points,
                                             ShardRange shard) {
  const size_t dim = static_cast<size_t>(points.dim);
  return backend.upload(
      std::span(points.x).subspan(static_cast<size_t>(shard.begin) * dim,
                                  static_cast<size_t>(shard.size()) * dim),
      std::span(points.weight)
          .subspan(static_cast<size_t>(shard.begin), static_cast<size_t>(shard.size())),
      points.dim);
}

}  // namespace

KMeansResult run_kmeans(const EngineContext& context, const KMeansParams& params,
                        const std::string& layer, std::span<const float> vectors, int dim,
                        const IterationCallback& on_iteration,
                        std::span<const uint32_t> vector_weights) {
  const auto start = Clock::now();
  Backend& backend = context.backend;
  Communicator& comm = context.group;
  validate(params, layer, vectors, dim, vector_weights);
  KMeansResult result;

  auto phase = Clock::now();
  Deduplicated distinct = deduplicate(vectors, dim);
  // With vector weights, the points' weights become importance-weighted counts; DWC
  // still needs their multiplicities (engine/dwc.h).
  std::vector<uint32_t> multiplicity;
  if (!vector_weights.empty()) {
    multiplicity = distinct.points.weight;
    apply_vector_weights(distinct, vector_weights, layer);
  }
  result.distinct_vectors = distinct.points.size();
  // One scale for the whole layer, from the original data: consolidated points are
  // means of original ones, so the bound holds for them too.
  const FixedPoint fp =
      FixedPoint::for_data(distinct.points.max_abs(), distinct.points.total_weight());

  // pg clusters the consolidated points; the others the distinct points.
  result.seconds_dedup = seconds_since(phase);
  const PointSet* working = &distinct.points;
  phase = Clock::now();
  if (params.algorithm == Algorithm::kPg) {
    result.dwc = consolidate_dense_weights(distinct.points, params.n_centroids, params.dwc, fp,
                                           layer, multiplicity);
    working = &result.dwc.points;
  }
  result.seconds_consolidation = seconds_since(phase);
  result.clustered_points = working->size();

  // Every rank of the group holds the same working points (deduplication and DWC are
  // deterministic) and assigns only its slice of them.
  phase = Clock::now();
  const ShardRange shard = shard_range(working->size(), comm.rank(), comm.size());
  auto resident = upload_slice(backend, *working, shard);
  ClusterState state(backend, *resident, *working, fp, params.n_centroids, comm, shard,
                     context.search);
  result.initial_empty = initialize(state, params, layer, distinct.source_to_point);
  result.seconds_preassign = seconds_since(phase);

  Rng resolution_rng(params.seed, layer, "ipq-resolve");
  for (int it = 0; it < params.iterations; ++it) {
    IterationStats stats;
    stats.iteration = it;
    const SearchStats before = state.search_stats;
    auto t = Clock::now();
    state.reassign();
    stats.seconds_assign = seconds_since(t);
    stats.empty_before = state.count_empty();

    t = Clock::now();
    ResolutionOutcome outcome;
    if (stats.empty_before > 0) {
      outcome = params.algorithm == Algorithm::kIpq
                    ? ipq_resolve_empty(state, params.ipq, resolution_rng)
                    : pg_finetune(state, params.pg);
    }
    stats.seconds_resolve = seconds_since(t);
    stats.resolution_rounds = outcome.rounds;
    stats.empty_after = state.count_empty();
    result.resolution_rounds += outcome.rounds;
    result.seconds_resolve += stats.seconds_resolve;
    if (!outcome.gave_up) {
      t = Clock::now();
      state.update_means();
      stats.seconds_update = seconds_since(t);
    }
    // The objective is over every original vector, not the working points.
    t = Clock::now();
    stats.objective = objective_of_distinct(distinct.points, state, result.dwc.input_to_point);
    stats.seconds_update += seconds_since(t);
    const int64_t full = state.search_stats.full - before.full;
    stats.scored_fraction =
        full > 0 ? double(state.search_stats.scored - before.scored) / double(full) : 0.0;
    result.seconds_assign += stats.seconds_assign;
    result.seconds_update += stats.seconds_update;
    result.per_iteration.push_back(stats);
    result.iterations_run = it + 1;
    if (on_iteration) on_iteration(stats);
    if (outcome.gave_up) {
      // fairseq raises EmptyClusterResolveError out of step() before the M-step and
      // learn() stops iterating: centroids keep their perturbations, codes are the
      // last reassignment's.
      result.stopped_early = true;
      result.stop_reason =
          str_cat(stats.empty_after, " empty clusters remain after ", outcome.rounds,
                  " resolution tries in iteration ", it, "; stopped iterating as fairseq does");
      break;
    }
  }
  if (params.iterations == 0) state.reassign();
  result.scored_fraction = state.search_stats.scored_fraction();

  // Codes of every input vector: input -> distinct point -> working point -> code.
  phase = Clock::now();
  const auto distinct_codes =
      codes_of_distinct(state, distinct.points.size(), result.dwc.input_to_point);
  if (working != &distinct.points && !result.stopped_early) {
    // pg clustered consolidated points, each "as if it has one weight"; mapped back,
    // a code stands for many weights. One last update over the original weights makes
    // every centroid the exact mean of the weights it encodes, the same invariant the
    // other algorithms end with. It can only lower the objective for these codes.
    const ShardRange slice = shard_range(distinct.points.size(), comm.rank(), comm.size());
    auto originals = upload_slice(backend, distinct.points, slice);
    backend.accumulate(
        *originals,
        std::span(distinct_codes)
            .subspan(static_cast<size_t>(slice.begin), static_cast<size_t>(slice.size())),
        fp, state.sums, state.counts);
    comm.allreduce_sum(state.sums);
    comm.allreduce_sum(state.counts);
    state.update_means();
  }
  result.codes = map_codes(distinct.source_to_point, distinct_codes);
  result.counts = code_counts(result.codes, params.n_centroids);
  result.empty_clusters = std::count(result.counts.begin(), result.counts.end(), uint64_t{0});
  result.objective = objective_of(distinct.points, distinct_codes, state.centroids);
  result.seconds_update += seconds_since(phase);
  result.centroids = std::move(state.centroids);
  result.dwc.points = {};
  result.dwc.input_to_point = {};
  result.seconds_total = seconds_since(start);
  return result;
}

}  // namespace pgkm
