// Dense Weights Consolidation (paper Section 4.3, Algorithms 3-5, Eq. 2).
//
// Finds dense clusters of points (all members within epsilon of one anchor member)
// and replaces each by a single representative point, which k-means then treats
// "as if the cluster just has one weight"; the mapping sends every input point to
// its representative so codes can be mapped back at the end.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "engine/points.h"

namespace pgkm {

struct DwcParams {
  // Eq. 2: when fewer than c_mc * n_centroids points remain after consolidation,
  // epsilon *= c_sd and consolidation is redone from the input.
  double c_sd = 0.8;
  double c_mc = 2.0;
  // Starting epsilon, as a multiple of the data's cell scale
  // rms_radius * n_centroids^(-1/dim), where rms_radius is the root mean squared
  // distance of the points to their weighted mean (see dwc.cpp for the reasoning).
  double initial_epsilon_scale = 0.25;
  // Paper: a consolidated point has weight 1 ("as if the cluster just has one
  // weight"); so has an independent point, since an input point of weight w already
  // stands for w identical raw weights. With count_weighted every output point
  // carries the total weight of the input points it stands for instead (an
  // option, measured against the paper's).
  bool count_weighted = false;
  // Safety bound on Eq. 2 updates; each update shrinks epsilon by c_sd. When it is
  // reached the last consolidation is kept (see DwcResult::epsilon_updates).
  int max_epsilon_updates = 200;
};

struct DwcResult {
  PointSet points;  // consolidated points: dense-cluster means and independent points
  std::vector<uint32_t> input_to_point;  // [input size] index into points of each input point
  int64_t dense_clusters = 0;            // consolidated points that stand for >= 2 input points
  int64_t independent_points = 0;        // input points left as they were
  double initial_epsilon = 0;            // epsilon of the first consolidation (0: none ran)
  double final_epsilon = 0;              // epsilon of the kept consolidation
  // How many times Eq. 2 shrank epsilon. Equal to max_epsilon_updates while
  // points.size() < c_mc * K means the bound stopped Eq. 2 before it was met.
  int epsilon_updates = 0;
};

// input: distinct weighted points (engine/points.h deduplicate). n_centroids: the
// layer's K. `layer` names the layer in errors. Deterministic: the top-level anchor
// is input point 0, and the result does not depend on the number of threads.
// When input.size() < c_mc * K no epsilon can satisfy Eq. 2, and the input is
// returned unchanged (identity mapping, original weights, both epsilons 0).
// Throws InputError for empty input, a dim/data mismatch, n_centroids < 1 or
// out-of-range params.
//
// multiplicity: empty when input's weights are multiplicities (how many identical raw
// subvectors a point stands for, as deduplicate makes them); else [input size], each
// point's multiplicity, its weight then being an importance-weighted count
// (engine/kmeans.h vector_weights). The paper's unit weight becomes the importance
// one copy has on average: a point or dense cluster of total weight w and multiplicity m
// weighs round(w / m) (at least 1), which is 1 again when every weight is 1.
DwcResult consolidate_dense_weights(const PointSet& input, int64_t n_centroids,
                                    const DwcParams& params, const FixedPoint& fp,
                                    const std::string& layer,
                                    std::span<const uint32_t> multiplicity = {});

}  // namespace pgkm
