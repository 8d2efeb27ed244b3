// Exact candidate search on the CPU (Backend::assign_pruned).
//
// 1. One parallel pass over the points in memory order groups their indices by
//    previous code (a stable counting sort), with each point's key limit
//    (candidates::KeyLimit, from its distance to its previous centroid).
// Then per cluster a (OpenMP, dynamic schedule):
// 2. the points are put in nearly ascending order of key limit (a counting sort on the
//    limits' exponents) and cut into tiles; a tile needs only the neighbours of c_a up
//    to the largest limit of its points. Up to kMaxLevels levels of ascending limits
//    cover the tiles;
// 3. one SIMD pass over the pair keys of c_a with all k centroids sorts the neighbours
//    into those levels;
// 4. the neighbours, level by level, are gathered into a small block in the kernels'
//    grouped layout, and each tile scores the prefix its level needs, rounded up to
//    whole groups (extra candidates are real centroids, so they change nothing);
//    results are scattered back.
// The tiles of the top levels (points with the largest limits) are brute forced when
// that is cheaper than gathering their candidates, and the whole cluster when searching
// would cost more than kMaxPrunedWork of brute force. A whole pass is brute force when it
// has few centroids, magnitudes the rounding bound does not cover, or when a sample of
// clusters shows that pruning cannot pay (as at b=16: step 1 would be pure overhead).
//
// Results do not depend on the thread count or on how points fall into tiles: every
// point gets the brute-force code and distance (candidates.h says why).
//
// Memory per pass: 8 bytes per point (index and limit, grouped), the thread count
// times k cursors, and per thread O(k * (dim + kMaxLevels)) for the neighbour lists and
// the candidate block. The points themselves are read in place, prefetched per cluster.
#include <omp.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <span>
#include <utility>
#include <vector>

#include "kernels/candidates.h"
#include "kernels/cpu/assign_kernels.h"
#include "kernels/cpu/cpu_internal.h"

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
// more than this fraction of the centroids: the search's own costs (grouping the
// points, selecting neighbours) would not be paid back.
constexpr double kSkipFraction = 0.6;
// The sample: every k / kSampleClusters-th cluster, up to kSamplePoints of its points.
constexpr int64_t kSampleClusters = 64;
constexpr int64_t kSamplePoints = 128;
// Buckets of the counting sort by limit: exponent and two mantissa bits, so rows in
// one bucket have limits within a factor 2^(1/4).
constexpr int kOrderBuckets = 32;

// What one cluster cost, for SearchStats.
struct ClusterWork {
  int64_t scored = 0;
  int64_t brute_force = 0;
};

// The points of a pass grouped by previous code (step 1): cluster a holds the rows
// offsets[a] .. offsets[a + 1], in point order.
struct Grouped {
  std::vector<int64_t> offsets;  // [k + 1]
  std::vector<uint32_t> ids;     // [n] point index of each row
  std::vector<float> limits;     // [n] key limit of each row
};

Grouped group_points(const CpuResidentPoints& points, const CentroidSet& c,
                     std::span<const uint32_t> previous, const candidates::KeyLimit& key_limit,
                     int threads) {
  const int dim = c.dim;
  const int64_t n = points.size();
  const int64_t k = c.k;
  Grouped g{std::vector<int64_t>(static_cast<size_t>(k) + 1, 0),
            std::vector<uint32_t>(static_cast<size_t>(n)),
            std::vector<float>(static_cast<size_t>(n))};
  // Thread t counts, then places, the points of its contiguous slice; slices are laid
  // out in thread order within each cluster, so rows stay in point order.
  std::vector<int64_t> cursor(static_cast<size_t>(threads * k), 0);
#pragma omp parallel num_threads(threads)
  {
    const int t = omp_get_thread_num();
    const int team = omp_get_num_threads();
    const int64_t first = n * t / team;
    const int64_t last = n * (t + 1) / team;
    int64_t* mine = cursor.data() + t * k;
    for (int64_t p = first; p < last; ++p)
      ++mine[previous[p]];
#pragma omp barrier
#pragma omp single
    {
      int64_t row = 0;
      for (int64_t a = 0; a < k; ++a) {
        g.offsets[a] = row;
        for (int u = 0; u < team; ++u) {
          const int64_t count = cursor[u * k + a];
          cursor[u * k + a] = row;
          row += count;
        }
      }
      g.offsets[k] = row;
    }
    for (int64_t p = first; p < last; ++p) {
      const int64_t row = mine[previous[p]]++;
      const float* src = points.point(p);
      float x[kMaxBlockSize];
      for (int d = 0; d < dim; ++d)
        x[d] = src[d * kTileWidth];
      g.ids[row] = static_cast<uint32_t>(p);
      g.limits[row] = key_limit(
          candidates::squared_distance_upper(x, c.rows + int64_t{previous[p]} * dim, dim));
    }
  }
  return g;
}

// The read-only inputs of the per-cluster search and where its results go.
struct Search {
  const KernelSet& kernels;
  const CpuResidentPoints& points;
  const CentroidSet& centroids;
  const Grouped& grouped;
  uint32_t* codes;  // [n] out, by point index
  float* dist;      // [n] out
};

// One cluster's rows.
struct Cluster {
  const float* limits;  // [m]
  const uint32_t* ids;  // [m]
  int64_t m;
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

// Fills scratch.order with the rows of the cluster in nearly ascending order of limit:
// a counting sort on limit bits >> 21 (exponent and two mantissa bits), counted down
// from the largest limit; far smaller limits share the first bucket.
void order_rows(const Cluster& cl, float largest, Scratch& scratch) {
  const uint32_t top = std::bit_cast<uint32_t>(largest) >> 21;
  auto bucket_of = [&](float limit) {
    const uint32_t below = top - (std::bit_cast<uint32_t>(limit) >> 21);
    return kOrderBuckets - 1 - static_cast<int>(std::min<uint32_t>(below, kOrderBuckets - 1));
  };
  std::array<int64_t, kOrderBuckets + 1> next{};
  for (int64_t i = 0; i < cl.m; ++i)
    ++next[bucket_of(cl.limits[i]) + 1];
  for (int b = 0; b < kOrderBuckets; ++b)
    next[b + 1] += next[b];
  scratch.order.resize(static_cast<size_t>(cl.m));
  for (int64_t i = 0; i < cl.m; ++i)
    scratch.order[next[bucket_of(cl.limits[i])]++] = static_cast<uint32_t>(i);
}

// Rows order[first, first + count) of a cluster as one SoA tile, [dim][width]; lanes
// past count are zero.
void make_tile(const Search& s, const Cluster& cl, const Scratch& scratch, int64_t first,
               int64_t count, int width, float* tile) {
  const int dim = s.centroids.dim;
  std::fill(tile, tile + int64_t{dim} * width, 0.f);
  for (int64_t lane = 0; lane < count; ++lane) {
    const float* src = s.points.point(cl.ids[scratch.order[first + lane]]);
    for (int d = 0; d < dim; ++d)
      tile[d * width + lane] = src[d * kTileWidth];
  }
}

// Results of lanes [0, count) of the kernel buffers, for rows order[first ...].
void scatter(const Search& s, const Cluster& cl, const Scratch& scratch, int64_t first,
             int64_t count) {
  for (int64_t lane = 0; lane < count; ++lane) {
    const uint32_t p = cl.ids[scratch.order[first + lane]];
    s.codes[p] = scratch.tile_codes[lane];
    s.dist[p] = scratch.tile_dist[lane];
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
  const int64_t row = s.grouped.offsets[a];
  const Cluster cl{s.grouped.limits.data() + row, s.grouped.ids.data() + row,
                   s.grouped.offsets[a + 1] - row};
  if (cl.m == 0) return {};
  // The points are read, and their results written, at random places below: fetch them
  // all now (a point's coordinates span dim / 2 cache lines of its tile).
  for (int64_t i = 0; i < cl.m; ++i) {
    const float* src = s.points.point(cl.ids[i]);
    for (int d = 0; d < c.dim; d += 2)
      __builtin_prefetch(src + d * kTileWidth);
    __builtin_prefetch(s.codes + cl.ids[i], 1);
    __builtin_prefetch(s.dist + cl.ids[i], 1);
  }
  float largest = 0.f;
  for (int64_t i = 0; i < cl.m; ++i)
    largest = std::max(largest, cl.limits[i]);
  order_rows(cl, largest, scratch);

  // Levels: consecutive tiles share one; its limit is the largest of its rows and of
  // the levels below (the order is only nearly ascending).
  const int width = s.kernels.tile_width;
  const int64_t tiles = (cl.m + width - 1) / width;
  const int levels = static_cast<int>(std::min<int64_t>(tiles, kMaxLevels));
  auto level_of = [&](int64_t t) { return static_cast<int>(t * levels / tiles); };
  float running = 0.f;
  for (int64_t t = 0; t < tiles; ++t) {
    for (int64_t i = t * width; i < std::min((t + 1) * width, cl.m); ++i)
      running = std::max(running, cl.limits[scratch.order[i]]);
    scratch.level_limits[level_of(t)] = running;
  }
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

// Whether the search can pay: on a sample of clusters (up to kSamplePoints points
// each), the share of the n * k centroid scores that the points would need, each up to
// its own key limit, estimated at kMaxLevels quantiles of the limits, is at most
// kSkipFraction.
bool pruning_pays(const KernelSet& kernels, const CpuResidentPoints& points, const CentroidSet& c,
                  std::span<const uint32_t> previous, const candidates::KeyLimit& key_limit) {
  const int dim = c.dim;
  const int64_t step = std::max<int64_t>(1, c.k / kSampleClusters);
  const int64_t sampled = (c.k + step - 1) / step;
  std::vector<int32_t> sample_of(static_cast<size_t>(c.k), -1);  // no division per point
  for (int64_t i = 0; i < sampled; ++i)
    sample_of[i * step] = static_cast<int32_t>(i);
  std::vector<std::vector<float>> limits(static_cast<size_t>(sampled));
  float x[kMaxBlockSize];
  int64_t full = 0;  // sampled clusters with kSamplePoints points: the scan stops at all
  for (int64_t p = 0; p < points.size() && full < sampled; ++p) {
    const int32_t i = sample_of[previous[p]];
    if (i < 0 || static_cast<int64_t>(limits[i].size()) == kSamplePoints) continue;
    const float* src = points.point(p);
    for (int d = 0; d < dim; ++d)
      x[d] = src[d * kTileWidth];
    limits[i].push_back(
        key_limit(candidates::squared_distance_upper(x, c.rows + int64_t{previous[p]} * dim, dim)));
    full += static_cast<int64_t>(limits[i].size()) == kSamplePoints;
  }
  std::vector<uint32_t> list(static_cast<size_t>(kMaxLevels * (c.k + 16)));
  double needed = 0.0;
  double all = 0.0;
  for (int64_t i = 0; i < sampled; ++i) {
    std::vector<float>& l = limits[i];
    const int64_t m = static_cast<int64_t>(l.size());
    if (m == 0) continue;
    std::sort(l.begin(), l.end());
    const int levels = static_cast<int>(std::min<int64_t>(m, kMaxLevels));
    float level_limits[kMaxLevels];
    int64_t counts[kMaxLevels];
    for (int q = 0; q < levels; ++q)
      level_limits[q] = l[(q + 1) * m / levels - 1];
    kernels.select_levels(c, i * step, candidates::block_limit(dim, level_limits[levels - 1]),
                          level_limits, levels, c.k + 16, list.data(), counts);
    int64_t prefix = 0;
    for (int q = 0; q < levels; ++q) {
      prefix += counts[q];
      needed += double(prefix) * double((q + 1) * m / levels - q * m / levels);
    }
    all += double(m) * double(c.k);
  }
  return needed <= kSkipFraction * all;
}

}  // namespace

void assign_pruned(const KernelSet& kernels, int threads, const CpuResidentPoints& points,
                   const PreparedCentroids& centroids, std::span<const uint32_t> previous,
                   std::span<uint32_t> codes, std::span<float> dist, SearchStats& stats) {
  const CentroidSet& c = centroids.view;
  const int64_t n = points.size();
  const int64_t k = c.k;
  stats = {n, k, n * k, n * k, n};
  const double max_centroid_norm =
      candidates::max_norm_upper({c.rows, static_cast<size_t>(k * c.dim)}, c.dim);
  if (k < kMinPrunedCentroids || n > int64_t{std::numeric_limits<uint32_t>::max()} ||
      !candidates::pruning_is_safe(points.max_norm(), max_centroid_norm)) {
    assign_all(kernels, threads, points, c, codes.data(), dist.data());
    return;
  }
  // The only reads of `previous`; they end before the first code is written, so the
  // two may be one array.
  const candidates::KeyLimit key_limit(c.dim, max_centroid_norm);
  if (!pruning_pays(kernels, points, c, previous, key_limit)) {
    assign_all(kernels, threads, points, c, codes.data(), dist.data());
    return;
  }
  const Grouped grouped = group_points(points, c, previous, key_limit, threads);
  const Search search{kernels, points, c, grouped, codes.data(), dist.data()};
  int64_t scored = 0;
  int64_t brute_force = 0;
#pragma omp parallel num_threads(threads) reduction(+ : scored, brute_force)
  {
    Scratch scratch(k, c.dim, kernels.tile_width);
#pragma omp for schedule(dynamic)
    for (int64_t a = 0; a < k; ++a) {
      const ClusterWork w = search_cluster(search, a, scratch);
      scored += w.scored;
      brute_force += w.brute_force;
    }
  }
  stats.scored = scored;
  stats.brute_force = brute_force;
}

}  // namespace pgkm::cpu
