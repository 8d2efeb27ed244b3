// Product-quantization block layout, identical to fairseq's (docs/ARCHITECTURE.md).
//
// A Linear/Embedding weight W of shape (out, in) with block size b is cut into
// subvectors of b contiguous weights of one row, ordered block-major:
// subvector j = blk * out + row is W[row, blk*b : (blk+1)*b]. A Conv2d weight
// (out, in, kh, kw) is treated as (out, in*kh*kw). Codes are stored in this order,
// so fairseq's PQLinear can take them as its `assignments`.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "engine/dtype.h"

namespace pgkm {

// What kind of layer a weight tensor belongs to; kNone is never quantized.
enum class ModuleType { kNone, kLinear, kEmbedding, kConv2d };

// "Linear", "Embedding", "Conv2d" (fairseq's class names) or "none".
const char* module_type_name(ModuleType type);
// Parses a name module_type_name gives; nullopt for anything else.
std::optional<ModuleType> parse_module_type(std::string_view name);

// A source tensor as it sits in the model file (little-endian, row-major).
struct WeightView {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  std::span<const std::byte> bytes;  // numel * dtype_size bytes
};

struct BlockLayout {
  int64_t rows = 0;        // out (filters for Conv2d)
  int64_t row_length = 0;  // in, or in*kh*kw for Conv2d
  int block_size = 0;      // b
  int64_t blocks_per_row() const { return row_length / block_size; }
  int64_t n_vectors() const { return rows * blocks_per_row(); }
};

// Number of elements of a tensor of `shape` (1 for a scalar); the shape must be valid.
int64_t element_count(std::span<const int64_t> shape);

// Validates shape and block size for tensor `name`: rank 2 or 4, no zero
// dimension, 1 <= b <= 32, b divides the row. Throws InputError naming the tensor.
BlockLayout make_block_layout(const std::string& name, std::span<const int64_t> shape,
                              int block_size);

// The check of a weight where it enters pgkm (the pipeline runs it on every layer it
// will quantize, before any clustering): throws InputError naming the tensor and element
// index when `w` holds a NaN or Inf, or when its byte size does not match its shape and
// dtype.
void check_weight_values(const WeightView& w);

// The largest |value| of `w` (0 for an empty tensor). Precondition: check_weight_values(w)
// passed. Used to decide whether a layer's centroids fit float16: a centroid is a mean
// of subvectors, so no coordinate exceeds this.
float max_abs_value(const WeightView& w);

// The subvectors of `w` in fairseq order as float: [n_vectors, b] row-major: a pure
// conversion. Precondition: check_weight_values(w) passed and `layout` is w's layout.
std::vector<float> extract_subvectors(const WeightView& w, const BlockLayout& layout);

// Inverse of extract_subvectors for a quantized layer: writes the dequantized
// weight (row-major, the tensor's original shape) to `out` [rows * row_length].
// centroids: [k, b]; codes: [n_vectors], each < k.
// column_scales: empty, or [row_length] scales s_c > 0 of an importance-weighted layer,
// whose weight W[r, c] is then centroid / s_c, one float32 division (IEEE round to
// nearest), the exact inverse contract of scale_subvectors.
void reconstruct_weight(const BlockLayout& layout, std::span<const float> centroids,
                        std::span<const uint32_t> codes, std::span<float> out,
                        std::span<const float> column_scales = {});

// Multiplies every coordinate of `vectors` (extract_subvectors' output for `layout`) by
// the scale of its column: coordinate d of subvector j = blk * rows + row is column
// blk * b + d. One float32 multiplication per weight. column_scales: [row_length].
void scale_subvectors(const BlockLayout& layout, std::span<const float> column_scales,
                      std::span<float> vectors);

}  // namespace pgkm
