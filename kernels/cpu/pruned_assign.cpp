// Exact candidate search on the CPU (Backend::assign_pruned).
//
// Between passes the layer keeps a copy of its points sorted by code (PrunedCache,
// rebuilt whenever the codes a pass is given are not the ones it was sorted by), so a
// cluster's points are contiguous rows. A pass works cluster by cluster (OpenMP,
// dynamic schedule), with cluster a's rows in cache the whole time:
// 1. each row's contract distance to c_a (the dist chain: the bits the brute-force
//    kernel gives if the code stays a), from which its key limit follows
//    (candidates::KeyLimit::of_distance);
// 2. the rows are put in nearly ascending order of distance (a counting sort on its
//    exponent and two mantissa bits) and cut into tiles; a tile needs only the
//    neighbours of c_a up to the key limit of its farthest row. Up to kMaxLevels levels
//    of ascending limits cover the tiles;
// 3. one SIMD pass over the pair keys of c_a with the centroids near it (blocks whose
//    box is out of reach are skipped) sorts the neighbours into those levels;
// 4. the neighbours, level by level, are gathered into a small block in the kernels'
//    grouped layout, and each tile scores the prefix its level needs, rounded up to
//    whole groups (extra candidates are real centroids, so they change nothing).
// The tiles of the top levels (rows with the largest limits) are brute forced when
// that is cheaper than gathering their candidates, and the whole cluster when searching
// would cost more than kMaxPrunedWork of brute force. Results go to the caller's codes
// and distances by point index; updating codes in place without distances (as k-means
// does), only the points that move are written. The fused pass (assign_accumulate_pruned)
// updates the previous pass's sums by the rows that moved (each thread records its
// clusters' movers while it searches) instead of adding up every point again; then the
// copy is re-sorted by the new codes (only when some changed). A whole pass is brute
// force when it has few centroids, magnitudes the rounding bound does not cover, or when
// a sample of clusters (on every thread) shows that pruning cannot pay (as at b=16).
//
// Results do not depend on the thread count or on how rows fall into tiles: every
// point gets the brute-force code and distance (candidates.h says why), and sums are
// exact integers.
//
// Memory: the cache (pruned_cache.h, about (8 dim + 20) bytes a point); per thread,
// O(k * (dim + kMaxLevels)) for the neighbour lists and the block.
#include <omp.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <span>
#include <utility>
#include <vector>

#include "kernels/candidates.h"
#include "kernels/cpu/assign_kernels.h"
#include "kernels/cpu/cpu_internal.h"
#include "kernels/cpu/pruned_cache.h"

namespace pgkm::cpu {

namespace {

// Below this many centroids a pass is brute force: a point scores 1-2 groups anyway.
constexpr int64_t kMinPrunedCentroids = 4 * kGroupSize;
// A cluster is brute forced when its tiles would score more than this fraction of the
// centroids brute force scores: a candidate costs a little more (tiles to gather,
// ties to track), and a pass that cannot prune must stay within 0.95x of brute force.
constexpr double kMaxPrunedWork = 0.8;
// Point tiles per brute-force call of a brute-forced cluster.
constexpr int64_t kBruteChunkTiles = 16;
// Cost of gathering one group of candidates into the block, relative to scoring one
// group for one tile (measured: gathers of dim + 1 values against 8 * dim FMAs).
constexpr double kFillCost = 1.5;
// The search is skipped for a pass when a sample says that the points would score
// more than this fraction of the centroids: the search's own costs (sorting the
// points, selecting neighbours) would not be paid back.
constexpr double kSkipFraction = 0.6;
// The sample: every k / kSampleClusters-th cluster, up to kSamplePoints of its points.
constexpr int64_t kSampleClusters = 64;
constexpr int64_t kSamplePoints = 128;
// The longest wait, in passes, between samples once one said that pruning cannot pay.
constexpr int kMaxBackoff = 8;
// Passes a block order serves before a fresh k-d order is made.
constexpr int kReorderPasses = 4;
// Buckets of the counting sort by distance: exponent and two mantissa bits, so rows in
// one bucket have distances within a factor 2^(1/4).
constexpr int kOrderBuckets = 32;

// How many of the ascending limits[0, m) are below `key` (std::lower_bound's index),
// without branches: the sample asks this for thousands of keys a cluster, whose
// outcomes a branch predictor cannot guess.
int64_t count_below(const float* limits, int64_t m, float key) {
  const float* base = limits;
  int64_t n = m;
  while (n > 1) {
    const int64_t half = n / 2;
    base = base[half - 1] < key ? base + half : base;
    n -= half;
  }
  return (base - limits) + (n == 1 && *base < key ? 1 : 0);
}

// Whether the search can pay: on a sample of clusters (up to kSamplePoints points
// each), the share of the n * k centroid scores that the points would need, each up to
// its own key limit, is at most kSkipFraction. The sampled clusters are measured on
// every thread; the counts are integers, so the answer does not depend on the threads.
bool pruning_pays(const KernelSet& kernels, int threads, const CpuResidentPoints& points,
                  const CentroidSet& c, std::span<const uint32_t> previous,
                  const candidates::KeyLimit& key_limit) {
  const int dim = c.dim;
  const int64_t step = std::max<int64_t>(1, c.k / kSampleClusters);
  const int64_t sampled = (c.k + step - 1) / step;
  std::vector<int32_t> sample_of(static_cast<size_t>(c.k), -1);  // no division per point
  for (int64_t i = 0; i < sampled; ++i)
    sample_of[i * step] = static_cast<int32_t>(i);
  // The sampled points, by cluster: only the codes are read here; the points' rows,
  // spread over the whole layer, are read below by every thread.
  std::vector<std::vector<uint32_t>> picked(static_cast<size_t>(sampled));
  int64_t full = 0;  // sampled clusters with kSamplePoints points: the scan stops at all
  for (int64_t p = 0; p < points.size() && full < sampled; ++p) {
    const int32_t i = sample_of[previous[p]];
    if (i < 0 || static_cast<int64_t>(picked[i].size()) == kSamplePoints) continue;
    picked[i].push_back(static_cast<uint32_t>(p));
    full += static_cast<int64_t>(picked[i].size()) == kSamplePoints;
  }
  int64_t needed = 0;  // centroid scores the sampled points need
  int64_t all = 0;     // and brute force would do
#pragma omp parallel num_threads(threads) reduction(+ : needed, all)
  {
    std::vector<uint32_t> ids(static_cast<size_t>(c.k + 16));
    std::vector<float> keys(static_cast<size_t>(c.k + 16));
    std::vector<int64_t> below(static_cast<size_t>(kSamplePoints) + 1);
    std::vector<float> l;
#pragma omp for schedule(dynamic, 1)
    for (int64_t i = 0; i < sampled; ++i) {
      const std::vector<uint32_t>& mine = picked[i];
      const int64_t m = static_cast<int64_t>(mine.size());
      if (m == 0) continue;
      const float* own_centroid = c.rows + i * step * dim;
      l.resize(static_cast<size_t>(m));
      for (int64_t j = 0; j < m; ++j) {
        if (j + 8 < m) __builtin_prefetch(points.point(mine[j + 8]));
        float x[kMaxBlockSize];
        const float* src = points.point(mine[j]);
        for (int d = 0; d < dim; ++d)
          x[d] = src[d * kTileWidth];
        float own = 0.f;
        kernels.own_distances(x, 1, own_centroid, dim, &own);
        l[j] = key_limit.of_distance(own);
      }
      std::sort(l.begin(), l.end());
      const int64_t count = kernels.select_neighbors(
          c, i * step, l.back(), candidates::block_limit(dim, l.back()), ids.data(), keys.data());
      // below[q]: keys needed by the points from the q-th smallest limit up.
      std::fill_n(below.begin(), m + 1, 0);
      for (int64_t j = 0; j < count; ++j)
        ++below[count_below(l.data(), m, keys[j])];
      int64_t prefix = 0;
      for (int64_t q = 0; q < m; ++q) {
        prefix += below[q];
        needed += prefix;
      }
      all += m * c.k;
    }
  }
  return double(needed) <= kSkipFraction * double(all);
}

// What one cluster cost, for SearchStats.
struct ClusterWork {
  int64_t scored = 0;
  int64_t brute_force = 0;
};

// The read-only inputs of the per-cluster search and where its results go.
struct Search {
  const KernelSet& kernels;
  const CentroidSet& centroids;
  const candidates::KeyLimit& key_limit;
  PrunedCache& cache;
  uint32_t* codes;  // [n] out, by point index
  float* dist;      // [n] out, or null: no distances wanted
  // codes is `previous` (updated in place): a point that keeps its code needs no write.
  bool in_place;
};

// One cluster's rows of the sorted copy.
struct Cluster {
  const float* xs;         // [m, dim]
  const float* own;        // [m] distance to c_a
  const uint32_t* points;  // [m]
  uint32_t* row_codes;     // [m] out
  int64_t m;
  uint32_t code;  // the cluster's: every row's previous code
};

// One thread's buffers; the per-cluster ones grow to the largest cluster seen.
struct Scratch {
  Scratch(int64_t k, int dim, int width)
      : list_stride(k + 16),
        lists(static_cast<size_t>(kMaxLevels * list_stride)),
        block_in(static_cast<size_t>(k + 16 + kGroupSize)),
        grouped(make_aligned_floats(static_cast<size_t>((k + kGroupSize) * dim))),
        half_norms(make_aligned_floats(static_cast<size_t>(k + kGroupSize))),
        ids(static_cast<size_t>(k + kGroupSize)),
        tiles(make_aligned_floats(
            static_cast<size_t>(std::max(kBruteChunkTiles * kTileWidth, int64_t{width}) * dim))),
        tile_codes(static_cast<size_t>(std::max(kBruteChunkTiles * kTileWidth, int64_t{width}))),
        tile_dist(tile_codes.size()) {}

  std::vector<uint32_t> order;                 // [m] rows of the cluster, limits nearly ascending
  float level_limits[kMaxLevels];              // ascending
  int64_t counts[kMaxLevels];                  // neighbours of each level
  std::array<int64_t, kMaxLevels + 1> prefix;  // neighbours the tiles of each level need
  int64_t list_stride;
  std::vector<uint32_t> lists;       // [kMaxLevels][list_stride] neighbours by level
  std::vector<uint32_t> block_in;    // the neighbours, level after level
  AlignedFloats grouped;             // candidate block, [groups][dim][kGroupSize]
  AlignedFloats half_norms;          // [groups * kGroupSize]
  std::vector<uint32_t> ids;         // [groups * kGroupSize]
  AlignedFloats tiles;               // SoA point tiles for the kernels
  std::vector<uint32_t> tile_codes;  // kernel results of those tiles
  std::vector<float> tile_dist;
};

// Fills scratch.order with the rows of the cluster in nearly ascending order of
// distance (so of key limit): a counting sort on distance bits >> 21 (exponent and two
// mantissa bits), counted down from the largest; far smaller ones share the first bucket.
void order_rows(const Cluster& cl, float largest, Scratch& scratch) {
  const uint32_t top = std::bit_cast<uint32_t>(largest) >> 21;
  auto bucket_of = [&](float own) {
    const uint32_t below = top - (std::bit_cast<uint32_t>(own) >> 21);
    return kOrderBuckets - 1 - static_cast<int>(std::min<uint32_t>(below, kOrderBuckets - 1));
  };
  std::array<int64_t, kOrderBuckets + 1> next{};
  for (int64_t i = 0; i < cl.m; ++i)
    ++next[bucket_of(cl.own[i]) + 1];
  for (int b = 0; b < kOrderBuckets; ++b)
    next[b + 1] += next[b];
  scratch.order.resize(static_cast<size_t>(cl.m));
  for (int64_t i = 0; i < cl.m; ++i)
    scratch.order[next[bucket_of(cl.own[i])]++] = static_cast<uint32_t>(i);
}

// Rows order[first, first + count) of a cluster as one SoA tile, [dim][width]; lanes
// past count are zero.
void make_tile(const Search& s, const Cluster& cl, const Scratch& scratch, int64_t first,
               int64_t count, int width, float* tile) {
  const int dim = s.centroids.dim;
  std::fill(tile, tile + int64_t{dim} * width, 0.f);
  for (int64_t lane = 0; lane < count; ++lane) {
    const float* src = cl.xs + int64_t{scratch.order[first + lane]} * dim;
    for (int d = 0; d < dim; ++d)
      tile[d * width + lane] = src[d];
  }
}

// Results of lanes [0, count) of the kernel buffers, for rows order[first ...].
void scatter(const Search& s, const Cluster& cl, const Scratch& scratch, int64_t first,
             int64_t count) {
  for (int64_t lane = 0; lane < count; ++lane) {
    const uint32_t row = scratch.order[first + lane];
    const uint32_t p = cl.points[row];
    // Random writes: only those the caller needs.
    if (!s.in_place || scratch.tile_codes[lane] != cl.code) s.codes[p] = scratch.tile_codes[lane];
    if (s.dist != nullptr) s.dist[p] = scratch.tile_dist[lane];
    cl.row_codes[row] = scratch.tile_codes[lane];
  }
}

// Rows order[begin, m) of a cluster against every centroid (brute-force kernel).
ClusterWork brute_force_rows(const Search& s, const Cluster& cl, int64_t begin, Scratch& scratch) {
  const int dim = s.centroids.dim;
  for (int64_t first = begin; first < cl.m; first += kBruteChunkTiles * kTileWidth) {
    const int64_t count = std::min(kBruteChunkTiles * kTileWidth, cl.m - first);
    const int64_t tiles = (count + kTileWidth - 1) / kTileWidth;
    for (int64_t t = 0; t < tiles; ++t) {
      make_tile(s, cl, scratch, first + t * kTileWidth,
                std::min<int64_t>(kTileWidth, count - t * kTileWidth), kTileWidth,
                scratch.tiles.get() + t * dim * kTileWidth);
    }
    s.kernels.assign_tiles(s.centroids, {scratch.tiles.get(), count, 0, tiles,
                                         scratch.tile_codes.data(), scratch.tile_dist.data()});
    scatter(s, cl, scratch, first, count);
  }
  return {(cl.m - begin) * s.centroids.k, cl.m - begin};
}

// The levels to search, in cost units of one group of 8 centroids scored for one tile:
// levels [0, cut) are searched, costing kFillCost per group gathered into the block
// plus their tiles' groups; the tiles of the levels above are brute forced, costing
// every group. Returns 0 (brute force the cluster) unless searching costs at most
// kMaxPrunedWork of brute force.
template <typename LevelOf>
int cheapest_cut(const Scratch& scratch, int levels, int64_t tiles, int64_t all_groups,
                 const LevelOf& level_of) {
  std::array<int64_t, kMaxLevels + 1> level_tiles{};
  for (int64_t t = 0; t < tiles; ++t)
    ++level_tiles[level_of(t)];
  const double brute = double(tiles * all_groups);
  double best = kMaxPrunedWork * brute;
  int best_cut = 0;
  double searched = 0.0;  // the scoring of levels below the cut
  int64_t brute_tiles = tiles;
  for (int cut = 1; cut <= levels; ++cut) {
    const int64_t groups = (scratch.prefix[cut] + kGroupSize - 1) / kGroupSize;
    searched += double(level_tiles[cut - 1] * groups);
    brute_tiles -= level_tiles[cut - 1];
    const double cost = kFillCost * double(groups) + searched + double(brute_tiles * all_groups);
    if (cost < best) {
      best = cost;
      best_cut = cut;
    }
  }
  return best_cut;
}

ClusterWork search_cluster(const Search& s, int64_t a, Scratch& scratch) {
  const CentroidSet& c = s.centroids;
  PrunedCache& cache = s.cache;
  const int64_t row = cache.offsets[a];
  const int64_t m = cache.offsets[a + 1] - row;
  if (m == 0) return {};
  const Cluster cl{cache.xs.get() + row * c.dim,
                   cache.own.data() + row,
                   cache.points.data() + row,
                   cache.row_codes.data() + row,
                   m,
                   static_cast<uint32_t>(a)};
  // Results are written at random places below: fetch those lines now (in place,
  // without distances, only the few points that move are written).
  if (!s.in_place || s.dist != nullptr) {
    for (int64_t i = 0; i < cl.m; ++i) {
      if (!s.in_place) __builtin_prefetch(s.codes + cl.points[i], 1);
      if (s.dist != nullptr) __builtin_prefetch(s.dist + cl.points[i], 1);
    }
  }
  const float largest =
      s.kernels.own_distances(cl.xs, m, c.rows + a * c.dim, c.dim, cache.own.data() + row);
  order_rows(cl, largest, scratch);

  // Levels: consecutive tiles share one; its limit is the key limit of the farthest of
  // its rows and of the levels below (the order is only nearly ascending).
  const int width = s.kernels.tile_width;
  const int64_t tiles = (cl.m + width - 1) / width;
  const int levels = static_cast<int>(std::min<int64_t>(tiles, kMaxLevels));
  auto level_of = [&](int64_t t) { return static_cast<int>(t * levels / tiles); };
  float running = 0.f;
  for (int64_t t = 0; t < tiles; ++t) {
    for (int64_t i = t * width; i < std::min((t + 1) * width, cl.m); ++i)
      running = std::max(running, cl.own[scratch.order[i]]);
    scratch.level_limits[level_of(t)] = running;
  }
  for (int l = 0; l < levels; ++l)
    scratch.level_limits[l] = s.key_limit.of_distance(scratch.level_limits[l]);
  s.kernels.select_levels(c, a, candidates::block_limit(c.dim, scratch.level_limits[levels - 1]),
                          scratch.level_limits, levels, scratch.list_stride, scratch.lists.data(),
                          scratch.counts);
  scratch.prefix[0] = 0;
  for (int l = 0; l < levels; ++l)
    scratch.prefix[l + 1] = scratch.prefix[l] + scratch.counts[l];
  const int cut = cheapest_cut(scratch, levels, tiles, c.groups, level_of);
  int64_t searched_tiles = 0;
  while (searched_tiles < tiles && level_of(searched_tiles) < cut)
    ++searched_tiles;
  ClusterWork done = brute_force_rows(s, cl, std::min(searched_tiles * width, cl.m), scratch);
  if (cut == 0) return done;

  const int64_t count = scratch.prefix[cut];
  for (int l = 0; l < cut; ++l) {
    std::copy_n(scratch.lists.data() + l * scratch.list_stride, scratch.counts[l],
                scratch.block_in.data() + scratch.prefix[l]);
  }
  const int64_t max_groups = (count + kGroupSize - 1) / kGroupSize;
  s.kernels.fill_block(c, scratch.block_in.data(), count, max_groups, scratch.grouped.get(),
                       scratch.half_norms.get(), scratch.ids.data());
  const CandidateBlock block{
      c.rows, scratch.grouped.get(), scratch.half_norms.get(), scratch.ids.data(), max_groups,
      c.dim};
  for (int64_t t = 0; t < searched_tiles; ++t) {
    const int64_t first = t * width;
    const int64_t lanes = std::min<int64_t>(width, cl.m - first);
    const int64_t groups = (scratch.prefix[level_of(t) + 1] + kGroupSize - 1) / kGroupSize;
    make_tile(s, cl, scratch, first, lanes, width, scratch.tiles.get());
    s.kernels.score_candidates(block, groups, scratch.tiles.get(), scratch.tile_codes.data(),
                               scratch.tile_dist.data());
    scatter(s, cl, scratch, first, lanes);
    done.scored += std::min(groups * kGroupSize, count) * lanes;
  }
  return done;
}

}  // namespace

void assign_pruned(const KernelSet& kernels, int threads, const CpuResidentPoints& points,
                   std::span<const float> centroid_rows, std::span<const uint32_t> previous,
                   std::span<uint32_t> codes, std::span<float> dist, SearchStats& stats,
                   const FixedPoint* fp, ClusterSums sums) {
  const int dim = points.dim();
  const int64_t n = points.size();
  const int64_t k = static_cast<int64_t>(centroid_rows.size()) / dim;
  stats = {n, k, n * k, n * k, n};
  std::shared_ptr<PrunedCache>& slot = points.pruned_cache();
  if (!slot) slot = std::make_shared<PrunedCache>();
  PrunedCache& cache = *slot;
  auto brute_force_pass = [&](const CentroidSet& c) {
    // The brute-force kernels write distances: into scratch when none are wanted.
    if (dist.empty()) cache.brute_dist.resize(static_cast<size_t>(n));
    assign_all(kernels, threads, points, c, codes.data(),
               dist.empty() ? cache.brute_dist.data() : dist.data());
    if (fp != nullptr) accumulate_all(threads, points, codes.data(), *fp, sums.sums, sums.counts);
  };
  // After a sample said that pruning cannot pay, the next passes are brute force
  // without one (1, 2, 4, then every 8 passes a new sample): where it never pays, as at
  // b=16, the sample would be pure overhead.
  if (cache.passes_to_skip > 0) {
    --cache.passes_to_skip;
    return brute_force_pass(prepare_centroids(centroid_rows, dim).view);
  }
  // The block order of an earlier pass is kept for kReorderPasses passes: centroids
  // move little, so its boxes stay nearly as small, and it costs no k-d sort.
  const bool reuse_order =
      cache.block_order.size() == static_cast<size_t>(k) && cache.order_age < kReorderPasses;
  const PreparedCentroids centroids =
      prepare_centroids(centroid_rows, dim, {true, reuse_order ? &cache.block_order : nullptr});
  const CentroidSet& c = centroids.view;
  const double max_centroid_norm =
      candidates::max_norm_upper({c.rows, static_cast<size_t>(k * dim)}, dim);
  if (k < kMinPrunedCentroids || n > int64_t{std::numeric_limits<uint32_t>::max()} ||
      !candidates::pruning_is_safe(points.max_norm(), max_centroid_norm)) {
    return brute_force_pass(c);
  }
  const candidates::KeyLimit key_limit(dim, max_centroid_norm);
  // A pass after one that scored little needs no sample: passes only get better.
  // `previous` is read only here and by sort_points, before any code is written, so
  // the two may be one array.
  if (cache.last_scored > kSkipFraction / 2 &&
      !pruning_pays(kernels, threads, points, c, previous, key_limit)) {
    cache.backoff = std::min(cache.backoff == 0 ? 1 : 2 * cache.backoff, kMaxBackoff);
    cache.passes_to_skip = cache.backoff;
    return brute_force_pass(c);
  }
  cache.backoff = 0;
  sort_points(threads, points, k, previous, cache);
  if (reuse_order) {
    ++cache.order_age;
  } else {
    cache.block_order = centroids.order;
    cache.order_age = 1;
  }

  const Search search{kernels,
                      c,
                      key_limit,
                      cache,
                      codes.data(),
                      dist.empty() ? nullptr : dist.data(),
                      codes.data() == previous.data()};
  // The fused pass updates the cached sums by the rows that move, when it has them.
  const bool move_sums = fp != nullptr && cache.have_sums && cache.fp_exponent == fp->exponent();
  std::vector<SumChanges> changes(static_cast<size_t>(move_sums ? threads : 0));
  int64_t scored = 0;
  int64_t brute_force = 0;
  int64_t moved = 0;
#pragma omp parallel num_threads(threads) reduction(+ : scored, brute_force, moved)
  {
    Scratch scratch(k, dim, kernels.tile_width);
    SumChanges* mine = move_sums ? &changes[static_cast<size_t>(omp_get_thread_num())] : nullptr;
    if (mine != nullptr) {
      mine->sums.assign(static_cast<size_t>(k * dim), 0);
      mine->counts.assign(static_cast<size_t>(k), 0);
    }
#pragma omp for schedule(dynamic, 4)
    for (int64_t a = 0; a < k; ++a) {
      const ClusterWork w = search_cluster(search, a, scratch);
      scored += w.scored;
      brute_force += w.brute_force;
      for (int64_t row = cache.offsets[a]; row < cache.offsets[a + 1]; ++row) {
        if (cache.row_codes[row] == a) continue;
        ++moved;
        if (mine != nullptr) record_move(points, *fp, cache, row, a, *mine);
      }
    }
  }
  stats.scored = scored;
  stats.brute_force = brute_force;
  cache.last_scored = stats.scored_fraction();

  if (fp != nullptr) {
    if (move_sums) {
      apply_changes(threads, changes, cache);
    } else {
      cache.sums.resize(static_cast<size_t>(k * dim));
      cache.counts.resize(static_cast<size_t>(k));
      accumulate_all(threads, points, codes.data(), *fp, cache.sums, cache.counts);
      cache.have_sums = true;
      cache.fp_exponent = fp->exponent();
    }
    std::copy(cache.sums.begin(), cache.sums.end(), sums.sums.begin());
    std::copy(cache.counts.begin(), cache.counts.end(), sums.counts.begin());
  } else if (moved > 0) {
    cache.have_sums = false;
  }
  if (moved > 0) resort_points(threads, dim, codes, cache);
}

}  // namespace pgkm::cpu
