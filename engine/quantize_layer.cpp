#include "engine/quantize_layer.h"

#include "core/errors.h"

namespace pgkm {

QuantizedLayer quantize_layer(Backend& backend, const WeightView& weight, int block_size,
                              const KMeansParams& params, const IterationCallback& on_iteration,
                              Communicator* group) {
  QuantizedLayer out;
  out.name = weight.name;
  out.shape = weight.shape;
  out.source_dtype = weight.dtype;
  out.layout = make_block_layout(weight.name, weight.shape, block_size);
  PGKM_EXPECTS(params.n_centroids <= out.layout.n_vectors(), weight.name, params.n_centroids,
               " centroids requested but block size ", block_size, " gives only ",
               out.layout.n_vectors(), " subvectors");
  const std::vector<float> vectors = extract_subvectors(weight, out.layout);
  out.kmeans = run_kmeans(backend, params, weight.name, vectors, block_size, on_iteration, group);
  return out;
}

}  // namespace pgkm
