// One layer, end to end: source tensor -> PQ subvectors -> k-means -> codebook and codes.
#pragma once

#include <string>

#include "engine/kmeans.h"
#include "engine/layout.h"

namespace pgkm {

struct QuantizedLayer {
  std::string name;
  std::vector<int64_t> shape;  // the source tensor's shape
  DType source_dtype = DType::F32;
  BlockLayout layout;
  KMeansResult kmeans;  // centroids [K, b], codes in fairseq order, statistics
};

// Quantizes `weight` with block size `block_size` and `params`. Bad input (shape,
// block size, K larger than the number of subvectors, NaN/Inf) throws InputError
// naming the tensor and the value. `group`: ranks sharing the layer (see run_kmeans).
QuantizedLayer quantize_layer(Backend& backend, const WeightView& weight, int block_size,
                              const KMeansParams& params,
                              const IterationCallback& on_iteration = {},
                              Communicator* group = nullptr);

}  // namespace pgkm
