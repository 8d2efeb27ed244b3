// Dense Weights Consolidation: paper Section 4.3, Eq. 2, Algorithms 3, 4 and 5.
//
// Algorithms 4 and 5 together are one step applied to a "task", a set of points
// whose first point is its anchor: order the set by distance to the anchor, cut
// the ordered distances into segments of width at most epsilon (Algorithm 5),
// then the segment holding the anchor is a confirmed dense cluster if it has more
// than one point (every member lies within epsilon of the anchor), every other
// segment of more than one point (a "ring") becomes a new task anchored at its
// own first point (Algorithm 4's recursion), and one-point segments are
// independent. The recursion runs on an explicit stack; a ring never holds the
// anchor's segment, so each new task is a strict subset of its parent and the
// process ends with every point in exactly one dense cluster or independent.
//
// Tasks only ever reorder their own slice of one shared array of entries, so each
// dense cluster is a contiguous range of that array, and sibling rings can be
// processed by different threads without changing the result. Small tasks are
// drained whole, one thread per group of tasks; large tasks go round by round,
// one per thread, except those too big to share out evenly, which every thread
// sorts together (ordering by (distance, point) is a strict total order, so a
// parallel sort gives the serial sort's result). The output is built from the set of dense
// clusters alone, numbered by smallest input index.
#include "engine/dwc.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <numeric>
#include <span>
#include <utility>

#include "core/errors.h"
#include "engine/dwc_sort.h"

namespace pgkm {
namespace {

using dwc::Entry;
using dwc::sort_entries;
using dwc::sort_entries_parallel;

constexpr uint32_t kNone = std::numeric_limits<uint32_t>::max();

// Tasks (and loops over points) at least this large use every thread; smaller
// tasks are drained whole by one thread, in groups of about this many points.
constexpr int64_t kParallelTask = int64_t{1} << 15;

struct Range {
  int64_t begin;
  int64_t end;
  int buffer = 0;  // which Work::rows holds the task's rows
  int64_t size() const { return end - begin; }
};

// The entries of all tasks and copies of their rows kept in the same order. A
// task reads its rows sequentially from one buffer and writes them in sorted
// order to the other, where its rings find them; deeper tasks are small enough to
// stay in cache. Reading input rows by point index instead misses the cache on
// every point at every level of the recursion.
struct Work {
  size_t dim = 0;
  std::vector<Entry> entries;
  // [entries.size(), dim] each. Not value-initialised: the first writes (by the
  // threads that use the rows) also map the pages.
  std::unique_ptr<float[]> rows[2];
};

// Plain multiply-add in dimension order (no fma, no reassociation) so every
// build computes the same distances and finds the same clusters.
double distance(const float* a, const float* b, size_t dim) {
  double sum = 0.0;
  for (size_t j = 0; j < dim; ++j) {
    const double diff = static_cast<double>(a[j]) - static_cast<double>(b[j]);
    sum += diff * diff;
  }
  return std::sqrt(sum);
}

// Entry k of a task whose rows start at `rows`: its distance to the anchor (row 0).
void key_entry(const float* rows, size_t dim, size_t k, Entry& e) {
  e.dist = distance(rows, rows + k * dim, dim);
  e.slot = static_cast<uint32_t>(k);
}

// Row k of a sorted task: the row its entry came from.
void copy_sorted_row(const float* rows, size_t dim, size_t k, const Entry& e, float* sorted_rows) {
  // A plain loop: std::copy_n of a short row becomes a memmove call per row.
  const float* from = rows + e.slot * dim;
  for (size_t j = 0; j < dim; ++j)
    sorted_rows[k * dim + j] = from[j];
}

// Algorithm 5, line 2: sorts a task by distance to its first point and writes its
// rows, in the new order, to the other buffer. No OpenMP construct here: this runs
// once per task, and even an inactive parallel region costs a runtime call.
void sort_task(Work& w, Range task, std::vector<Entry>& tmp) {
  const size_t dim = w.dim;
  const auto b = static_cast<size_t>(task.begin);
  const auto n = static_cast<size_t>(task.size());
  const float* rows = w.rows[task.buffer].get() + b * dim;
  float* sorted_rows = w.rows[1 - task.buffer].get() + b * dim;
  const std::span<Entry> entries(w.entries.data() + b, n);
  for (size_t k = 0; k < n; ++k)
    key_entry(rows, dim, k, entries[k]);
  sort_entries(entries, tmp);
  for (size_t k = 0; k < n; ++k)
    copy_sorted_row(rows, dim, k, entries[k], sorted_rows);
}

// sort_task for one large task, with every thread.
void sort_task_parallel(Work& w, Range task, std::vector<Entry>& tmp) {
  const size_t dim = w.dim;
  const auto b = static_cast<size_t>(task.begin);
  const auto n = static_cast<int64_t>(task.size());
  const float* rows = w.rows[task.buffer].get() + b * dim;
  float* sorted_rows = w.rows[1 - task.buffer].get() + b * dim;
  const std::span<Entry> entries(w.entries.data() + b, static_cast<size_t>(n));
#pragma omp parallel for schedule(static)
  for (int64_t k = 0; k < n; ++k)
    key_entry(rows, dim, static_cast<size_t>(k), entries[static_cast<size_t>(k)]);
  sort_entries_parallel(entries, tmp);
#pragma omp parallel for schedule(static)
  for (int64_t k = 0; k < n; ++k)
    copy_sorted_row(rows, dim, static_cast<size_t>(k), entries[static_cast<size_t>(k)],
                    sorted_rows);
}

// Algorithm 5's walk over a sorted task, plus Algorithm 4's test "anchor in
// C_pd[0]". The anchor has distance 0, the smallest, so it is always in the first
// segment: that segment is a dense cluster when it has more than one point.
void split_task(std::span<const Entry> entries, Range task, double eps, std::vector<Range>& dense,
                std::vector<Range>& rings) {
  int64_t s = task.begin;
  for (int64_t i = task.begin + 1; i <= task.end; ++i) {
    // The paper's loop only closes a segment when a later distance exceeds it, so
    // it drops the last segment [s, n); closing at i == end keeps those points.
    if (i < task.end && entries[i].dist - entries[s].dist <= eps) continue;
    if (i - s > 1) (s == task.begin ? dense : rings).push_back({s, i, 1 - task.buffer});
    s = i;
  }
}

// Runs tasks from `stack` until none is left; dense clusters go to `dense`.
void drain(Work& w, double eps, std::vector<Range> stack, std::vector<Range>& dense) {
  std::vector<Entry> tmp;
  while (!stack.empty()) {
    const Range task = stack.back();
    stack.pop_back();
    sort_task(w, task, tmp);
    split_task(w.entries, task, eps, dense, stack);
  }
}

// Drains disjoint tasks on all threads: consecutive tasks of about kParallelTask
// points in all form a group, drained by one thread; clusters are gathered per
// group, so the list does not depend on the schedule.
void drain_all(Work& w, double eps, std::span<const Range> tasks, std::vector<Range>& dense) {
  std::vector<size_t> group_begin{0};
  int64_t points = 0;
  for (size_t t = 0; t < tasks.size(); ++t) {
    if (points >= kParallelTask) {
      group_begin.push_back(t);
      points = 0;
    }
    points += tasks[t].size();
  }
  group_begin.push_back(tasks.size());
  const auto groups = static_cast<int64_t>(group_begin.size()) - 1;
  std::vector<std::vector<Range>> found(static_cast<size_t>(groups));
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t g = 0; g < groups; ++g) {
    const auto i = static_cast<size_t>(g);
    const auto first = tasks.begin() + static_cast<ptrdiff_t>(group_begin[i]);
    const auto last = tasks.begin() + static_cast<ptrdiff_t>(group_begin[i + 1]);
    drain(w, eps, std::vector<Range>(first, last), found[i]);
  }
  for (const std::vector<Range>& f : found) {
    dense.insert(dense.end(), f.begin(), f.end());
  }
}

// Sorts and splits each of `tasks` on one thread, with one thread per task,
// largest first; the dense clusters and rings are appended in task order, as a
// serial loop would.
void split_each(Work& w, double eps, std::span<const Range> tasks, std::vector<Range>& dense,
                std::vector<Range>& rings) {
  const auto count = static_cast<int64_t>(tasks.size());
  std::vector<size_t> largest_first(tasks.size());
  std::iota(largest_first.begin(), largest_first.end(), size_t{0});
  std::stable_sort(largest_first.begin(), largest_first.end(),
                   [&](size_t a, size_t b) { return tasks[a].size() > tasks[b].size(); });
  std::vector<std::vector<Range>> found(tasks.size());
  std::vector<std::vector<Range>> next(tasks.size());
#pragma omp parallel if (count > 1)
  {
    std::vector<Entry> tmp;
#pragma omp for schedule(dynamic, 1)
    for (int64_t t = 0; t < count; ++t) {
      const size_t i = largest_first[static_cast<size_t>(t)];
      sort_task(w, tasks[i], tmp);
      split_task(w.entries, tasks[i], eps, found[i], next[i]);
    }
  }
  for (size_t i = 0; i < tasks.size(); ++i) {
    dense.insert(dense.end(), found[i].begin(), found[i].end());
    rings.insert(rings.end(), next[i].begin(), next[i].end());
  }
}

// Input point 0 is the top-level anchor (Algorithm 3 calls Algorithm 4 with
// anchor index 0), so no random choice is needed and the order does not depend
// on epsilon: Eq. 2's retries reuse it.
std::vector<Entry> sort_by_distance_to_first(const PointSet& input) {
  const auto dim = static_cast<size_t>(input.dim);
  const int64_t n = input.size();
  std::vector<Entry> root(static_cast<size_t>(n));
#pragma omp parallel for schedule(static) if (n >= kParallelTask)
  for (int64_t k = 0; k < n; ++k) {
    const auto i = static_cast<size_t>(k);
    root[i] = {distance(input.x.data(), input.x.data() + i * dim, dim), static_cast<uint32_t>(i),
               0};
  }
  std::vector<Entry> tmp;
  if (n >= kParallelTask) {
    sort_entries_parallel(root, tmp);
  } else {
    sort_entries(root, tmp);
  }
  return root;
}

// One consolidation at a fixed epsilon (Algorithm 3 lines 2-3) starting from the
// sorted `root`. Returns the dense clusters as ranges of w.entries.
std::vector<Range> find_dense_clusters(const PointSet& input, std::span<const Entry> root,
                                       double eps, Work& w) {
  const auto n = static_cast<int64_t>(root.size());
  const bool parallel = n >= kParallelTask;
  w.dim = static_cast<size_t>(input.dim);
  if (w.entries.size() != root.size()) {
    w.entries.resize(root.size());
    for (std::unique_ptr<float[]>& rows : w.rows)
      rows = std::make_unique_for_overwrite<float[]>(input.x.size());
  }
#pragma omp parallel for schedule(static) if (parallel)
  for (int64_t k = 0; k < n; ++k) {
    const auto i = static_cast<size_t>(k);
    w.entries[i] = root[i];
    const float* from = input.x.data() + root[i].point * w.dim;
    for (size_t j = 0; j < w.dim; ++j)
      w.rows[0][i * w.dim + j] = from[j];
  }
  std::vector<Range> dense;
  std::vector<Range> tasks;
  // The root's rows were gathered, sorted, into buffer 0; splitting the root as
  // if it had read buffer 1 sends its rings to buffer 0.
  split_task(w.entries, {0, n, 1}, eps, dense, tasks);
  // Rings are disjoint. Small ones are drained whole, in parallel. Large ones are
  // sorted and split, and their rings join the next round: those too big to
  // share out evenly (over 1/(2 * threads) of the round's large points) one at a
  // time by all threads, the others one per thread.
  std::vector<Entry> tmp;
  while (!tasks.empty()) {
    std::vector<Range> large;
    std::vector<Range> small;
    int64_t large_points = 0;
    for (const Range& task : tasks) {
      (task.size() < kParallelTask ? small : large).push_back(task);
      large_points += task.size() < kParallelTask ? 0 : task.size();
    }
    tasks.clear();
    const int64_t huge = large_points / (2 * omp_get_max_threads());
    std::vector<Range> shared;
    for (const Range& task : large) {
      if (task.size() <= huge) {
        shared.push_back(task);
        continue;
      }
      sort_task_parallel(w, task, tmp);
      split_task(w.entries, task, eps, dense, tasks);
    }
    split_each(w, eps, shared, dense, tasks);
    drain_all(w, eps, small, dense);
  }
  return dense;
}

// Points per partial sum of initial_epsilon: a fixed chunking, so the partial
// sums, and their sum in chunk order, are the same bits for any thread count.
constexpr int64_t kSumChunk = 4096;

// sum over chunks c, in order, of f(begin, end) for the chunk's points; f returns
// its partial sums in `out` [width].
template <typename F>
std::vector<double> chunked_sums(int64_t n, size_t width, F f) {
  const int64_t chunks = (n + kSumChunk - 1) / kSumChunk;
  std::vector<double> partial(static_cast<size_t>(chunks) * width, 0.0);
#pragma omp parallel for schedule(static) if (n >= kParallelTask)
  for (int64_t c = 0; c < chunks; ++c) {
    f(c * kSumChunk, std::min(n, (c + 1) * kSumChunk), partial.data() + c * width);
  }
  std::vector<double> total(width, 0.0);
  for (int64_t c = 0; c < chunks; ++c) {
    for (size_t j = 0; j < width; ++j)
      total[j] += partial[static_cast<size_t>(c) * width + j];
  }
  return total;
}

// The starting epsilon: initial_epsilon_scale * rms_radius * K^(-1/dim). K cells
// covering data of root-mean-square radius R have a typical radius of about
// R * K^(-1/dim); points much closer together than one cell are the "dense
// clusters that should intuitively be represented by the same centroid", and
// Eq. 2 can only shrink epsilon, so it must start at a sensible scale. Sums run
// in index order within fixed chunks, so the value is reproducible.
double initial_epsilon(const PointSet& points, int64_t n_centroids, double scale) {
  const auto dim = static_cast<size_t>(points.dim);
  // [0, dim): weighted coordinate sums; [dim]: total weight.
  std::vector<double> mean =
      chunked_sums(points.size(), dim + 1, [&](int64_t begin, int64_t end, double* out) {
        for (int64_t i = begin; i < end; ++i) {
          const double w = points.weight[static_cast<size_t>(i)];
          const std::span<const float> r = points.row(i);
          for (size_t j = 0; j < dim; ++j)
            out[j] += w * r[j];
          out[dim] += w;
        }
      });
  const double total = mean[dim];
  for (size_t j = 0; j < dim; ++j)
    mean[j] /= total;
  const double sum_sq =
      chunked_sums(points.size(), 1, [&](int64_t begin, int64_t end, double* out) {
        for (int64_t i = begin; i < end; ++i) {
          const std::span<const float> r = points.row(i);
          double d2 = 0.0;
          for (size_t j = 0; j < dim; ++j) {
            const double diff = r[j] - mean[j];
            d2 += diff * diff;
          }
          out[0] += points.weight[static_cast<size_t>(i)] * d2;
        }
      })[0];
  const double rms_radius = std::sqrt(sum_sq / total);
  return scale * rms_radius * std::pow(static_cast<double>(n_centroids), -1.0 / points.dim);
}

// The dense clusters seen from the input points.
struct ClusterIndex {
  std::vector<uint32_t> cluster_of;  // [n] the point's dense cluster, or kNone
  std::vector<uint32_t> leader;      // [clusters] the smallest input index of the cluster
  std::vector<uint64_t> weight;      // [clusters] total input weight of the members
  uint64_t heaviest = 0;             // the largest of `weight`
};

ClusterIndex index_clusters(const PointSet& input, std::span<const Entry> entries,
                            std::span<const Range> dense) {
  ClusterIndex index;
  const int64_t n = input.size();
  const auto clusters = static_cast<int64_t>(dense.size());
  index.cluster_of.assign(static_cast<size_t>(n), kNone);
  index.leader.resize(dense.size());
  index.weight.resize(dense.size());
  uint64_t heaviest = 0;
#pragma omp parallel for schedule(static) reduction(max : heaviest) if (n >= kParallelTask)
  for (int64_t c = 0; c < clusters; ++c) {
    uint32_t leader = kNone;
    uint64_t weight = 0;
    for (int64_t k = dense[static_cast<size_t>(c)].begin; k < dense[static_cast<size_t>(c)].end;
         ++k) {
      const uint32_t p = entries[static_cast<size_t>(k)].point;
      index.cluster_of[p] = static_cast<uint32_t>(c);
      leader = std::min(leader, p);
      weight += input.weight[p];
    }
    index.leader[static_cast<size_t>(c)] = leader;
    index.weight[static_cast<size_t>(c)] = weight;
    heaviest = std::max(heaviest, weight);
  }
  index.heaviest = heaviest;
  return index;
}

// Algorithm 3 lines 9-10: one point per dense cluster (the exact mean of its
// members) and one per independent point, ordered by the smallest input index
// each stands for, so the order depends neither on the traversal nor on threads.
// Output ids come from a prefix sum over fixed chunks of the input, so every chunk
// fills its own output rows.
// The weight of an output point standing for input points of total weight `weight` and
// total multiplicity `copies`: 1 in the paper's unit-weight mode ("as if the cluster just
// has one weight"), the importance one copy has on average (weight / copies, rounded,
// >= 1) when the input's weights carry importance (multiplicity given), the total
// weight with count_weighted.
uint32_t output_weight(const DwcParams& params, bool importance, uint64_t weight, uint64_t copies) {
  if (params.count_weighted) return static_cast<uint32_t>(weight);
  if (!importance) return 1;
  return static_cast<uint32_t>(std::max<uint64_t>(1, (weight + copies / 2) / copies));
}

void build_output(const PointSet& input, std::span<const uint32_t> multiplicity,
                  std::span<const Entry> entries, std::span<const Range> dense,
                  const DwcParams& params, const FixedPoint& fp, const std::string& layer,
                  DwcResult& result) {
  const bool importance = !multiplicity.empty();
  const int64_t n = input.size();
  const ClusterIndex index = index_clusters(input, entries, dense);
  PGKM_EXPECTS(!params.count_weighted || index.heaviest <= std::numeric_limits<uint32_t>::max(),
               layer, "a dense cluster's total weight ", index.heaviest,
               " does not fit in 32 bits");
  // A point starts an output point when it is independent or leads its cluster.
  const auto starts = [&](int64_t i) {
    const uint32_t c = index.cluster_of[static_cast<size_t>(i)];
    return c == kNone || index.leader[c] == i;
  };
  const int chunks = n >= kParallelTask ? omp_get_max_threads() : 1;
  std::vector<int64_t> base(static_cast<size_t>(chunks) + 1, 0);
#pragma omp parallel for schedule(static, 1) if (chunks > 1)
  for (int c = 0; c < chunks; ++c) {
    int64_t count = 0;
    for (int64_t i = chunk_begin(n, chunks, c); i < chunk_begin(n, chunks, c + 1); ++i)
      count += starts(i) ? 1 : 0;
    base[static_cast<size_t>(c) + 1] = count;
  }
  for (size_t c = 0; c < static_cast<size_t>(chunks); ++c)
    base[c + 1] += base[c];

  PointSet& out = result.points;
  const auto dim = static_cast<size_t>(input.dim);
  out.dim = input.dim;
  out.x.resize(static_cast<size_t>(base.back()) * dim);
  out.weight.resize(static_cast<size_t>(base.back()));
  result.input_to_point.resize(static_cast<size_t>(n));
  std::vector<uint32_t> cluster_point(dense.size());
#pragma omp parallel for schedule(static, 1) if (chunks > 1)
  for (int c = 0; c < chunks; ++c) {
    std::vector<uint32_t> members;
    auto id = static_cast<size_t>(base[static_cast<size_t>(c)]);
    for (int64_t i = chunk_begin(n, chunks, c); i < chunk_begin(n, chunks, c + 1); ++i) {
      if (!starts(i)) continue;
      const auto p = static_cast<size_t>(i);
      const std::span<float> row(out.x.data() + id * dim, dim);
      const uint32_t cluster = index.cluster_of[p];
      if (cluster == kNone) {
        // Unweighted mode: an input point already stands for `weight` identical raw
        // weights, which the paper would consolidate into one, so it counts once.
        std::copy_n(input.x.data() + p * dim, dim, row.begin());
        out.weight[id] = output_weight(params, importance, input.weight[p],
                                       importance ? multiplicity[p] : input.weight[p]);
      } else {
        members.clear();
        uint64_t copies = 0;
        for (int64_t k = dense[cluster].begin; k < dense[cluster].end; ++k) {
          members.push_back(entries[static_cast<size_t>(k)].point);
          if (importance) copies += multiplicity[members.back()];
        }
        exact_mean(input, members, fp, row);
        out.weight[id] = output_weight(params, importance, index.weight[cluster], copies);
        cluster_point[cluster] = static_cast<uint32_t>(id);
      }
      result.input_to_point[p] = static_cast<uint32_t>(id++);
    }
  }
#pragma omp parallel for schedule(static) if (chunks > 1)
  for (int64_t i = 0; i < n; ++i) {
    const uint32_t c = index.cluster_of[static_cast<size_t>(i)];
    if (c != kNone) result.input_to_point[static_cast<size_t>(i)] = cluster_point[c];
  }
  result.dense_clusters = static_cast<int64_t>(dense.size());
  result.independent_points = out.size() - result.dense_clusters;
}

void validate(const PointSet& input, int64_t n_centroids, const DwcParams& params,
              const std::string& layer) {
  PGKM_EXPECTS(input.size() > 0, layer, "dense weights consolidation got no points");
  PGKM_EXPECTS(input.dim >= 1, layer, "point dimension ", input.dim, " must be at least 1");
  PGKM_EXPECTS(input.x.size() == static_cast<size_t>(input.size()) * static_cast<size_t>(input.dim),
               layer, "point data holds ", input.x.size(), " floats, expected ", input.size(),
               " points of dimension ", input.dim);
  PGKM_EXPECTS(input.size() < static_cast<int64_t>(kNone), layer, input.size(),
               " points exceed the 32-bit point indices");
  PGKM_EXPECTS(n_centroids >= 1, layer, "number of centroids ", n_centroids, " must be >= 1");
  PGKM_EXPECTS(params.c_sd > 0.0 && params.c_sd < 1.0, layer, "c_sd ", params.c_sd,
               " must lie in (0, 1)");
  PGKM_EXPECTS(params.c_mc > 0.0, layer, "c_mc ", params.c_mc, " must be positive");
  PGKM_EXPECTS(params.initial_epsilon_scale > 0.0, layer, "initial_epsilon_scale ",
               params.initial_epsilon_scale, " must be positive");
  PGKM_EXPECTS(params.max_epsilon_updates >= 0, layer, "max_epsilon_updates ",
               params.max_epsilon_updates, " must be >= 0");
}

}  // namespace

DwcResult consolidate_dense_weights(const PointSet& input, int64_t n_centroids,
                                    const DwcParams& params, const FixedPoint& fp,
                                    const std::string& layer,
                                    std::span<const uint32_t> multiplicity) {
  validate(input, n_centroids, params, layer);
  PGKM_ASSERT(multiplicity.empty() || multiplicity.size() == input.weight.size());
  const int64_t n = input.size();
  const double min_points = params.c_mc * static_cast<double>(n_centroids);
  DwcResult result;
  if (static_cast<double>(n) < min_points) {
    // Consolidation never adds points, so Eq. 2 cannot hold at any epsilon > 0.
    // Returning the input as is (original weights, identity mapping) is what
    // running without DWC would do; both epsilons stay 0 as none was used.
    result.points = input;
    result.input_to_point.resize(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i)
      result.input_to_point[static_cast<size_t>(i)] = static_cast<uint32_t>(i);
    result.independent_points = n;
    return result;
  }
  double eps = initial_epsilon(input, n_centroids, params.initial_epsilon_scale);
  PGKM_EXPECTS(std::isfinite(eps), layer, "points have non-finite coordinates");
  result.initial_epsilon = eps;

  const std::vector<Entry> root = sort_by_distance_to_first(input);
  Work work;
  std::vector<Range> dense;
  for (result.epsilon_updates = 0;; ++result.epsilon_updates) {
    dense = find_dense_clusters(input, root, eps, work);
    int64_t n_cw = n;
    for (const Range& d : dense)
      n_cw -= d.size() - 1;
    // Eq. 2 accepts the first epsilon with n_cw >= c_mc * K. At the update bound the
    // last result is kept; epsilon_updates == max_epsilon_updates together with
    // fewer than c_mc * K points shows the bound was hit.
    if (static_cast<double>(n_cw) >= min_points ||
        result.epsilon_updates == params.max_epsilon_updates) {
      break;
    }
    eps *= params.c_sd;
  }
  result.final_epsilon = eps;
  build_output(input, multiplicity, work.entries, dense, params, fp, layer, result);
  return result;
}

}  // namespace pgkm
