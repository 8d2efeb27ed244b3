// Size accounting: fairseq's SizeTracker (docs/ARCHITECTURE.md) and the real bytes of the
// source and the archive, side by side; and the cost model used to order and schedule
// layers.
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

// Bits of one stored code: ceil(log2 K), at least 1. Archive schema v2 packs codes at
// this width (docs/ARCHIVE.md); SizeTracker counts the fractional log2(K) instead.
inline int code_bits(int64_t n_centroids) {
  int bits = 1;
  while (bits < 63 && (int64_t{1} << bits) < n_centroids)
    ++bits;
  return bits;
}

// Bytes of `n_codes` codes of `bits` bits each, packed back to back.
inline uint64_t packed_code_bytes(uint64_t n_codes, int bits) {
  return (n_codes * static_cast<uint64_t>(bits) + 7) / 8;
}

// The sizes reported for one layer, one tensor or a whole model. Two accountings side
// by side: fairseq's SizeTracker (kept for comparison with the paper: every parameter at
// 4 bytes, fractional log2(K)/b bits per weight) and the real bytes (the source in its
// own dtypes, and the archive as pgkm stores it). for_each_size_field lists them once for
// every output (JSON report, progress lines, dry run, inspect).
struct SizeFigures {
  double tracker_original_mib = 0;    // SizeTracker: 4 bytes per floating-point parameter
  double tracker_compressed_mib = 0;  // SizeTracker: log2(K)/b bits per weight + fp16 centroids
  uint64_t source_bytes = 0;          // the source tensors' bytes, in their own dtypes
  // Bytes the archive stores: codes packed at ceil(log2 K) bits, centroids in their
  // stored dtype, kept tensors unchanged (and, for a model, the recorded
  // non-weight files); HDF5's own overhead (attributes, object headers) is not included.
  uint64_t archive_bytes = 0;

  SizeFigures& operator+=(const SizeFigures& o) {
    tracker_original_mib += o.tracker_original_mib;
    tracker_compressed_mib += o.tracker_compressed_mib;
    source_bytes += o.source_bytes;
    archive_bytes += o.archive_bytes;
    return *this;
  }
  // SizeTracker's ratio (the paper's "compression ratio").
  double tracker_ratio() const {
    return tracker_compressed_mib > 0 ? tracker_original_mib / tracker_compressed_mib : 0;
  }
};

// One size field: its JSON key (report) and its label (text output).
// An importance-weighted layer's float32 column scales (pgkm quantize --importance): real
// archive bytes, and counted in SizeTracker's compressed size at the same 4 bytes, so a
// weighted run's ratio includes what weighting costs.
inline SizeFigures column_scale_sizes(size_t n_scales) {
  SizeFigures f;
  f.archive_bytes = 4 * n_scales;
  f.tracker_compressed_mib = 4.0 * static_cast<double>(n_scales) / (1024.0 * 1024.0);
  return f;
}

struct SizeField {
  const char* name;
  const char* label;
};

// Visits every field of `s`, `visit(const SizeField&, member&)`, in report order.
template <typename Sizes, typename Visit>
void for_each_size_field(Sizes& s, Visit&& visit) {
  visit(SizeField{"original_mib", "SizeTracker original MiB"}, s.tracker_original_mib);
  visit(SizeField{"compressed_mib", "SizeTracker compressed MiB"}, s.tracker_compressed_mib);
  visit(SizeField{"source_bytes", "source bytes"}, s.source_bytes);
  visit(SizeField{"archive_bytes", "archive bytes"}, s.archive_bytes);
}

// A quantized layer of `numel` weights of `source_dtype_bytes` each, with block size b,
// K centroids stored at `centroid_dtype_bytes` (2 or 4).
inline SizeFigures quantized_layer_sizes(int64_t numel, size_t source_dtype_bytes, int block_size,
                                         int64_t n_centroids, size_t centroid_dtype_bytes) {
  SizeFigures s;
  s.tracker_original_mib = original_bytes(numel) / kBytesPerMiB;
  s.tracker_compressed_mib = quantized_bytes(numel, block_size, n_centroids) / kBytesPerMiB;
  s.source_bytes = static_cast<uint64_t>(numel) * source_dtype_bytes;
  const auto k = static_cast<uint64_t>(n_centroids);
  s.archive_bytes =
      packed_code_bytes(static_cast<uint64_t>(numel / block_size), code_bits(n_centroids)) +
      k * static_cast<uint64_t>(block_size) * centroid_dtype_bytes;
  return s;
}

// A tensor kept as it is: `nbytes` in the source and in the archive; SizeTracker counts
// it at 4 bytes per element when it is a parameter (floating point), else not at all.
inline SizeFigures kept_tensor_sizes(int64_t numel, uint64_t nbytes, bool is_parameter) {
  SizeFigures s;
  if (is_parameter) {
    s.tracker_original_mib = s.tracker_compressed_mib = original_bytes(numel) / kBytesPerMiB;
  }
  s.source_bytes = s.archive_bytes = nbytes;
  return s;
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
