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
// processed by different threads without changing the result.
#include "engine/dwc.h"

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <limits>
#include <span>
#include <utility>

#include "core/errors.h"

namespace pgkm {
namespace {

constexpr uint32_t kNone = std::numeric_limits<uint32_t>::max();

struct Entry {
  double dist;     // Euclidean distance to the current task's anchor
  uint32_t point;  // index into the input PointSet
  uint32_t slot;   // position of its row within the task before the sort

  // Ties in distance are broken by point index so the order, and with it every
  // later anchor choice, is fully determined by the data.
  bool operator<(const Entry& o) const {
    return dist < o.dist || (dist == o.dist && point < o.point);
  }
};

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
  std::vector<float> rows[2];  // [entries.size(), dim] each
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

uint64_t distance_bits(const Entry& e) {
  return std::bit_cast<uint64_t>(e.dist);
}

// Sorts by (dist, point): the same order as std::sort with Entry::operator<, but
// large tasks use a stable LSD radix sort on the distance bits (non-negative
// doubles order like their bit patterns), about three times faster; sorting is
// most of the run time on large layers. Runs of equal distance are then ordered
// by point.
void sort_entries(std::span<Entry> v, std::vector<Entry>& tmp) {
  constexpr size_t kRadixFrom = 1024;
  if (v.size() < kRadixFrom) {
    std::sort(v.begin(), v.end());
    return;
  }
  std::vector<std::array<size_t, 256>> count(8, std::array<size_t, 256>{});
  for (const Entry& e : v) {
    const uint64_t key = distance_bits(e);
    for (size_t d = 0; d < 8; ++d)
      ++count[d][(key >> (8 * d)) & 255];
  }
  tmp.resize(v.size());
  std::span<Entry> src = v;
  std::span<Entry> dst(tmp.data(), v.size());
  for (size_t d = 0; d < 8; ++d) {
    // A byte that all keys share would leave the order as it is.
    if (std::find(count[d].begin(), count[d].end(), v.size()) != count[d].end()) continue;
    size_t offset = 0;
    for (size_t& c : count[d])
      offset += std::exchange(c, offset);
    for (const Entry& e : src)
      dst[count[d][(distance_bits(e) >> (8 * d)) & 255]++] = e;
    std::swap(src, dst);
  }
  if (src.data() != v.data()) std::copy(src.begin(), src.end(), v.begin());
  for (auto first = v.begin(); first != v.end();) {
    const auto last =
        std::find_if(first, v.end(), [&](const Entry& e) { return e.dist != first->dist; });
    if (last - first > 1) std::sort(first, last);
    first = last;
  }
}

// Algorithm 5, line 2: sorts a task by distance to its first point and writes its
// rows, in the new order, to the other buffer.
void sort_task(Work& w, Range task, std::vector<Entry>& tmp) {
  const size_t dim = w.dim;
  const auto b = static_cast<size_t>(task.begin);
  const auto n = static_cast<size_t>(task.size());
  const float* rows = w.rows[task.buffer].data() + b * dim;
  float* sorted_rows = w.rows[1 - task.buffer].data() + b * dim;
  const std::span<Entry> entries(w.entries.data() + b, n);
  for (size_t k = 0; k < n; ++k) {
    entries[k].dist = distance(rows, rows + k * dim, dim);
    entries[k].slot = static_cast<uint32_t>(k);
  }
  sort_entries(entries, tmp);
  // A plain loop: std::copy_n of a short row becomes a memmove call per row.
  for (size_t k = 0; k < n; ++k) {
    const float* from = rows + entries[k].slot * dim;
    for (size_t j = 0; j < dim; ++j)
      sorted_rows[k * dim + j] = from[j];
  }
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

// Input point 0 is the top-level anchor (Algorithm 3 calls Algorithm 4 with
// anchor index 0), so no random choice is needed and the order does not depend
// on epsilon: Eq. 2's retries reuse it.
std::vector<Entry> sort_by_distance_to_first(const PointSet& input) {
  const auto dim = static_cast<size_t>(input.dim);
  std::vector<Entry> root(static_cast<size_t>(input.size()));
  for (size_t i = 0; i < root.size(); ++i) {
    root[i] = {distance(input.x.data(), input.x.data() + i * dim, dim), static_cast<uint32_t>(i),
               0};
  }
  std::vector<Entry> tmp;
  sort_entries(root, tmp);
  return root;
}

// One consolidation at a fixed epsilon (Algorithm 3 lines 2-3) starting from the
// sorted `root`. Returns the dense clusters as ranges of w.entries.
std::vector<Range> find_dense_clusters(const PointSet& input, std::span<const Entry> root,
                                       double eps, Work& w) {
  w.dim = static_cast<size_t>(input.dim);
  w.entries.assign(root.begin(), root.end());
  for (std::vector<float>& rows : w.rows)
    rows.resize(input.x.size());
  for (size_t k = 0; k < root.size(); ++k) {
    const std::span<const float> r = input.row(root[k].point);
    std::copy(r.begin(), r.end(), w.rows[0].begin() + static_cast<int64_t>(k * w.dim));
  }
  std::vector<Range> dense;
  std::vector<Range> rings;
  // The root's rows were gathered, sorted, into buffer 0; splitting the root as
  // if it had read buffer 1 sends its rings to buffer 0.
  split_task(w.entries, {0, static_cast<int64_t>(root.size()), 1}, eps, dense, rings);
  // Top-level rings are disjoint, so threads may take them in any order; their
  // clusters are gathered per ring, so the list does not depend on the schedule.
  std::vector<std::vector<Range>> found(rings.size());
  const auto n_rings = static_cast<int64_t>(rings.size());
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t r = 0; r < n_rings; ++r) {
    drain(w, eps, {rings[static_cast<size_t>(r)]}, found[static_cast<size_t>(r)]);
  }
  for (const std::vector<Range>& f : found) {
    dense.insert(dense.end(), f.begin(), f.end());
  }
  return dense;
}

// The starting epsilon: initial_epsilon_scale * rms_radius * K^(-1/dim). K cells
// covering data of root-mean-square radius R have a typical radius of about
// R * K^(-1/dim); points much closer together than one cell are the "dense
// clusters that should intuitively be represented by the same centroid", and
// Eq. 2 can only shrink epsilon, so it must start at a sensible scale. Sums run
// sequentially in index order, so the value is reproducible.
double initial_epsilon(const PointSet& points, int64_t n_centroids, double scale) {
  const int dim = points.dim;
  std::vector<double> mean(static_cast<size_t>(dim), 0.0);
  double total = 0.0;
  for (int64_t i = 0; i < points.size(); ++i) {
    const double w = points.weight[static_cast<size_t>(i)];
    const std::span<const float> r = points.row(i);
    for (int j = 0; j < dim; ++j)
      mean[static_cast<size_t>(j)] += w * r[static_cast<size_t>(j)];
    total += w;
  }
  for (double& m : mean)
    m /= total;
  double sum_sq = 0.0;
  for (int64_t i = 0; i < points.size(); ++i) {
    const std::span<const float> r = points.row(i);
    double d2 = 0.0;
    for (int j = 0; j < dim; ++j) {
      const double diff = r[static_cast<size_t>(j)] - mean[static_cast<size_t>(j)];
      d2 += diff * diff;
    }
    sum_sq += points.weight[static_cast<size_t>(i)] * d2;
  }
  const double rms_radius = std::sqrt(sum_sq / total);
  return scale * rms_radius * std::pow(static_cast<double>(n_centroids), -1.0 / dim);
}

void append_row(PointSet& out, std::span<const float> row, uint32_t weight) {
  out.x.insert(out.x.end(), row.begin(), row.end());
  out.weight.push_back(weight);
}

// Algorithm 3 lines 9-10: one point per dense cluster (the exact mean of its
// members) and one per independent point, ordered by the smallest input index
// each stands for, so the order depends neither on the traversal nor on threads.
void build_output(const PointSet& input, std::span<const Entry> entries,
                  std::span<const Range> dense, const DwcParams& params, const FixedPoint& fp,
                  const std::string& layer, DwcResult& result) {
  const int64_t n = input.size();
  std::vector<uint32_t> cluster_of(static_cast<size_t>(n), kNone);
  for (size_t c = 0; c < dense.size(); ++c) {
    for (int64_t k = dense[c].begin; k < dense[c].end; ++k) {
      cluster_of[entries[static_cast<size_t>(k)].point] = static_cast<uint32_t>(c);
    }
  }
  PointSet& out = result.points;
  out.dim = input.dim;
  std::vector<uint32_t> cluster_point(dense.size(), kNone);
  std::vector<uint32_t> members;
  std::vector<float> mean(static_cast<size_t>(input.dim));
  result.input_to_point.assign(static_cast<size_t>(n), kNone);
  for (int64_t i = 0; i < n; ++i) {
    const uint32_t c = cluster_of[static_cast<size_t>(i)];
    const auto next = static_cast<uint32_t>(out.size());
    if (c == kNone) {
      // Unweighted mode: an input point already stands for `weight` identical raw
      // weights, which the paper would consolidate into one, so it counts once.
      append_row(out, input.row(i),
                 params.count_weighted ? input.weight[static_cast<size_t>(i)] : 1);
    } else if (cluster_point[c] == kNone) {
      members.clear();
      uint64_t weight = 0;
      for (int64_t k = dense[c].begin; k < dense[c].end; ++k) {
        members.push_back(entries[static_cast<size_t>(k)].point);
        weight += input.weight[members.back()];
      }
      PGKM_EXPECTS(!params.count_weighted || weight <= std::numeric_limits<uint32_t>::max(), layer,
                   "a dense cluster's total weight ", weight, " does not fit in 32 bits");
      exact_mean(input, members, fp, mean);
      append_row(out, mean, params.count_weighted ? static_cast<uint32_t>(weight) : 1);
      cluster_point[c] = next;
    }
    result.input_to_point[static_cast<size_t>(i)] = c == kNone ? next : cluster_point[c];
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
                                    const std::string& layer) {
  validate(input, n_centroids, params, layer);
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
  build_output(input, work.entries, dense, params, fp, layer, result);
  return result;
}

}  // namespace pgkm
