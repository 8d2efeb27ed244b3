#include "engine/quantize_layer.h"

#include <chrono>
#include <cmath>

#include "core/errors.h"

namespace pgkm {
namespace {

// Sum of squared errors of the dequantized weight (reconstruct_weight, scales divided
// out) against the source, in double, in row order: the same bits for any thread count.
double plain_error(const WeightView& weight, const BlockLayout& layout, const LayerRecord& r) {
  const std::vector<float> source = [&] {
    const BlockLayout one_block{layout.rows * layout.row_length, 1, 1};
    return extract_subvectors(weight, one_block);  // the tensor as float, row-major
  }();
  std::vector<float> restored(source.size());
  reconstruct_weight(layout, r.centroids, r.codes, restored, r.column_scales);
  double sum = 0;
  for (size_t i = 0; i < source.size(); ++i) {
    const double d = static_cast<double>(source[i]) - static_cast<double>(restored[i]);
    sum += d * d;
  }
  return sum;
}

}  // namespace

LayerRecord quantize_layer(const EngineContext& context, const WeightView& weight,
                           const LayerSettings& settings, const IterationCallback& on_iteration,
                           std::span<const float> column_scales,
                           std::span<const uint32_t> row_weights) {
  const BlockLayout layout = make_block_layout(weight.name, weight.shape, settings.block_size);
  const int64_t k = settings.kmeans.n_centroids;
  PGKM_EXPECTS(k <= layout.n_vectors(), weight.name, k, " centroids requested but block size ",
               settings.block_size, " gives only ", layout.n_vectors(), " subvectors");
  const auto start = std::chrono::steady_clock::now();
  std::vector<float> vectors = extract_subvectors(weight, layout);
  if (!column_scales.empty()) {
    PGKM_EXPECTS(column_scales.size() == static_cast<size_t>(layout.row_length), weight.name,
                 column_scales.size(), " column scales given for a row of ", layout.row_length);
    for (size_t c = 0; c < column_scales.size(); ++c) {
      PGKM_EXPECTS(std::isfinite(column_scales[c]) && column_scales[c] > 0, weight.name,
                   "column scale ", c, " is ", column_scales[c], ", expected a finite value > 0");
    }
    scale_subvectors(layout, column_scales, vectors);
  }
  // Subvector j holds part of row j % rows (engine/layout.h), so it takes that row's weight.
  std::vector<uint32_t> vector_weights;
  if (!row_weights.empty()) {
    PGKM_EXPECTS(row_weights.size() == static_cast<size_t>(layout.rows), weight.name,
                 row_weights.size(), " row weights given for ", layout.rows, " rows");
    vector_weights.resize(static_cast<size_t>(layout.n_vectors()));
    for (size_t j = 0; j < vector_weights.size(); ++j)
      vector_weights[j] = row_weights[j % static_cast<size_t>(layout.rows)];
  }
  const double seconds_load =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  KMeansResult result = run_kmeans(context, settings.kmeans, weight.name, vectors,
                                   settings.block_size, on_iteration, vector_weights);
  result.seconds_load = seconds_load;
  LayerRecord record;
  record.name = weight.name;
  record.shape = weight.shape;
  record.source_dtype = weight.dtype;
  record.settings = settings;
  record.settings_digest = settings_digest(settings);
  record.stats = result;  // the LayerStats part of the result
  record.centroids = std::move(result.centroids);
  record.codes = std::move(result.codes);
  record.counts = std::move(result.counts);
  record.stats.plain_objective = record.stats.objective;
  if (!column_scales.empty())
    record.column_scales.assign(column_scales.begin(), column_scales.end());
  if (!column_scales.empty() || !row_weights.empty()) {
    record.stats.plain_objective = plain_error(weight, layout, record);
  }
  return record;
}

}  // namespace pgkm
