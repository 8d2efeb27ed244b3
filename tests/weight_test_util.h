// Helpers shared by the weighted-quantization tests (test_importance.cpp,
// test_token_weights.cpp): random layer weights and small k-means settings.
#pragma once

#include <cstdint>
#include <functional>
#include <random>
#include <vector>

#include "engine/layer_record.h"
#include "engine/layout.h"

namespace pgkm {

inline constexpr Algorithm kAllAlgorithms[] = {Algorithm::kIpq, Algorithm::kPgBase, Algorithm::kPg};

// n values drawn from N(0, 0.05^2): the scale of trained weights.
inline std::vector<float> random_weight(unsigned seed, int64_t n) {
  std::mt19937 gen(seed);
  std::normal_distribution<float> normal(0.f, 0.05f);
  std::vector<float> w(static_cast<size_t>(n));
  for (float& v : w)
    v = normal(gen);
  return w;
}

// Block size 4, k centroids, `iterations` iterations of `algorithm`.
inline LayerSettings small_settings(Algorithm algorithm, int64_t k, int iterations) {
  LayerSettings s;
  s.block_size = 4;
  s.kmeans.n_centroids = k;
  s.kmeans.iterations = iterations;
  s.kmeans.algorithm = algorithm;
  return s;
}

// sum_i weight(i) * (w[i] - w_hat[i])^2 over the record's dequantized weight (element i
// in row-major order, scales divided out).
inline double weighted_error(const std::vector<float>& w, const LayerRecord& r,
                             const std::function<double(size_t)>& weight) {
  const BlockLayout layout = make_block_layout(r.name, r.shape, r.settings.block_size);
  std::vector<float> out(w.size());
  reconstruct_weight(layout, r.centroids, r.codes, out, r.column_scales);
  double e = 0;
  for (size_t i = 0; i < w.size(); ++i) {
    const double d = double(w[i]) - double(out[i]);
    e += weight(i) * d * d;
  }
  return e;
}

}  // namespace pgkm
