#include "engine/quantize_layer.h"

#include <chrono>

#include "core/errors.h"

namespace pgkm {

LayerRecord quantize_layer(const EngineContext& context, const WeightView& weight,
                           const LayerSettings& settings, const IterationCallback& on_iteration) {
  const BlockLayout layout = make_block_layout(weight.name, weight.shape, settings.block_size);
  const int64_t k = settings.kmeans.n_centroids;
  PGKM_EXPECTS(k <= layout.n_vectors(), weight.name, k, " centroids requested but block size ",
               settings.block_size, " gives only ", layout.n_vectors(), " subvectors");
  const auto start = std::chrono::steady_clock::now();
  const std::vector<float> vectors = extract_subvectors(weight, layout);
  const double seconds_load =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  KMeansResult result =
      run_kmeans(context, settings.kmeans, weight.name, vectors, settings.block_size, on_iteration);
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
  return record;
}

}  // namespace pgkm
