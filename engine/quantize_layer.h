// One layer, end to end: source tensor -> PQ subvectors -> k-means -> codebook and codes.
#pragma once

#include "engine/kmeans.h"
#include "engine/layer_record.h"
#include "engine/layout.h"

namespace pgkm {

// Quantizes `weight` as `settings` say and returns its record: name, shape, source
// dtype, settings and their digest, statistics, centroids [K, b], codes in fairseq order
// and counts (module_type and source_digest are the caller's to fill in). Bad input
// (shape, block size, K larger than the number of subvectors) throws InputError naming
// the tensor and the value. Precondition: the weight's values were checked with
// check_weight_values (where the model is read), so they are finite.
//
// column_scales: empty (plain), or one finite scale > 0 per column of the weight viewed as
// (rows, row_length): the k-means then runs on W[:, c] * s_c, minimizing
// sum_c s_c^2 (w_c - w_hat_c)^2, and the record keeps the scales (stats.objective is that
// weighted error, stats.plain_objective the error of centroid / s_c against W).
//
// row_weights: empty, or one integer weight >= 1 per row (an embedding's token, weighted
// by how often it occurs): every subvector of row r counts w_r times in the k-means, which
// minimizes sum_r w_r |W[r] - W_hat[r]|^2. Nothing is stored for them (the codebook and
// codes are all a reconstruction needs); stats.objective is the weighted error and
// stats.plain_objective the unweighted one.
LayerRecord quantize_layer(const EngineContext& context, const WeightView& weight,
                           const LayerSettings& settings,
                           const IterationCallback& on_iteration = {},
                           std::span<const float> column_scales = {},
                           std::span<const uint32_t> row_weights = {});

}  // namespace pgkm
