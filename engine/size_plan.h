// Size accounting compatible with fairseq's SizeTracker (docs/ARCHITECTURE.md), and the cost
// model used to order and schedule layers.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>

namespace pgkm {

inline constexpr double kBytesPerMiB = 1024.0 * 1024.0;

// Every parameter counts 4 bytes before compression, whatever its stored dtype.
inline double original_bytes(int64_t numel) {
  return 4.0 * static_cast<double>(numel);
}

// A quantized layer: log2(K)/b * numel / 8 bytes of codes
// (fractional bits, as SizeTracker counts them), plus K*b fp16 centroids.
inline double quantized_bytes(int64_t numel, int block_size, int64_t n_centroids) {
  const double code_bytes =
      std::log2(static_cast<double>(n_centroids)) / block_size * static_cast<double>(numel) / 8.0;
  return code_bytes + 2.0 * static_cast<double>(n_centroids) * block_size;
}

// Floating-point tensors are parameters; integer and boolean tensors in a checkpoint are
// buffers (position ids, masks) that fairseq's tracker, which walks parameters, never sees.
inline bool counts_as_parameter(const std::string& safetensors_dtype) {
  return safetensors_dtype.starts_with("F") || safetensors_dtype == "BF16";
}

// Per-layer work that does not scale with K or the iteration count (deduplication, dense
// weights consolidation, pre-assignment) costs about as much as this many distance terms
// per coordinate. Measured with one thread on the RoBERTa-shaped model
// (bench/make_roberta_model.py): 0.14 us per coordinate for the embedding (2.4M subvectors
// of b=16) and 0.19 us for the 768x768 projections (b=4), against 31G distance terms/s in
// assignment. Without this term the schedule underweights big-N layers (the embedding is
// 25% of the distance terms but 37% of the time at 5 iterations) and rank 0, which gets
// it, finishes last.
inline constexpr double kSetupTermsPerCoordinate = 5000;

// Work of one layer, in distance terms (one multiply-add of one coordinate): assignment
// passes plus set-up. Used to order and balance layers over ranks.
inline double clustering_cost(int64_t n_vectors, int64_t n_centroids, int block_size,
                              int iterations) {
  return static_cast<double>(n_vectors) * block_size *
         (static_cast<double>(n_centroids) * std::max(iterations, 1) + kSetupTermsPerCoordinate);
}

}  // namespace pgkm
