#include "engine/layout.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/enum_names.h"
#include "core/errors.h"
#include "core/text.h"
#include "kernels/backend.h"

namespace pgkm {

namespace {
constexpr EnumNames<ModuleType, 4> kModuleTypeNames{{{{ModuleType::kNone, "none"},
                                                      {ModuleType::kLinear, "Linear"},
                                                      {ModuleType::kEmbedding, "Embedding"},
                                                      {ModuleType::kConv2d, "Conv2d"}}}};
}  // namespace

const char* module_type_name(ModuleType type) {
  return kModuleTypeNames.name(type);
}

std::optional<ModuleType> parse_module_type(std::string_view name) {
  return kModuleTypeNames.parse(name);
}

int64_t element_count(std::span<const int64_t> shape) {
  int64_t n = 1;
  for (int64_t d : shape)
    n *= d;
  return n;
}

namespace {

float load_element(const std::byte* base, size_t index, DType t) {
  switch (t) {
    case DType::F32: {
      float v;
      std::memcpy(&v, base + index * 4, 4);
      return v;
    }
    case DType::F16:
    case DType::BF16: {
      uint16_t h;
      std::memcpy(&h, base + index * 2, 2);
      return t == DType::F16 ? f16_to_float(h) : bf16_to_float(h);
    }
  }
  return 0.f;
}

}  // namespace

BlockLayout make_block_layout(const std::string& name, std::span<const int64_t> shape,
                              int block_size) {
  PGKM_EXPECTS(shape.size() == 2 || shape.size() == 4, name,
               "only 2-D (Linear, Embedding) and 4-D (Conv2d) weights can be quantized, shape is ",
               shape_text(shape));
  for (int64_t d : shape) {
    PGKM_EXPECTS(d > 0, name, "zero-size tensor, shape ", shape_text(shape));
  }
  PGKM_EXPECTS(block_size >= 1 && block_size <= kMaxBlockSize, name, "block size ", block_size,
               " is outside 1..", kMaxBlockSize);
  BlockLayout layout;
  layout.rows = shape[0];
  layout.row_length = 1;
  for (size_t i = 1; i < shape.size(); ++i)
    layout.row_length *= shape[i];
  layout.block_size = block_size;
  PGKM_EXPECTS(layout.row_length % block_size == 0, name, "row length ", layout.row_length,
               " (shape ", shape_text(shape), ") is not divisible by block size ", block_size);
  PGKM_EXPECTS(layout.n_vectors() < (int64_t{1} << 32), name, layout.n_vectors(),
               " subvectors: more than 2^32 in one layer is not supported");
  return layout;
}

void check_weight_values(const WeightView& w) {
  int64_t numel = 1;
  for (int64_t d : w.shape)
    numel *= d;
  PGKM_EXPECTS(w.bytes.size() == static_cast<size_t>(numel) * dtype_size(w.dtype), w.name, "holds ",
               w.bytes.size(), " bytes but shape ", shape_text(w.shape), " of ",
               dtype_name(w.dtype), " needs ", static_cast<size_t>(numel) * dtype_size(w.dtype));
  const int64_t row_length = w.shape.empty() ? 1 : numel / std::max<int64_t>(w.shape[0], 1);
  for (size_t i = 0; i < static_cast<size_t>(numel); ++i) {
    const float v = load_element(w.bytes.data(), i, w.dtype);
    PGKM_EXPECTS(std::isfinite(v), w.name, "element ", i, " (row ",
                 static_cast<int64_t>(i) / row_length, ", column ",
                 static_cast<int64_t>(i) % row_length, ") is ", v,
                 "; only finite weights can be quantized");
  }
}

std::vector<float> extract_subvectors(const WeightView& w, const BlockLayout& layout) {
  PGKM_ASSERT(
      w.bytes.size() == static_cast<size_t>(layout.rows * layout.row_length) * dtype_size(w.dtype),
      "weight ", w.name, ": ", w.bytes.size(), " bytes do not match the layout");
  const int b = layout.block_size;
  const int64_t out = layout.rows;
  std::vector<float> vectors(static_cast<size_t>(layout.rows * layout.row_length));
  for (int64_t row = 0; row < out; ++row) {
    for (int64_t blk = 0; blk < layout.blocks_per_row(); ++blk) {
      const size_t src = static_cast<size_t>(row * layout.row_length + blk * b);
      const size_t dst = static_cast<size_t>((blk * out + row) * b);
      for (int d = 0; d < b; ++d) {
        vectors[dst + static_cast<size_t>(d)] =
            load_element(w.bytes.data(), src + static_cast<size_t>(d), w.dtype);
      }
    }
  }
  return vectors;
}

void reconstruct_weight(const BlockLayout& layout, std::span<const float> centroids,
                        std::span<const uint32_t> codes, std::span<float> out) {
  const int b = layout.block_size;
  const int64_t k = static_cast<int64_t>(centroids.size()) / b;
  PGKM_ASSERT(codes.size() == static_cast<size_t>(layout.n_vectors()));
  PGKM_ASSERT(out.size() == static_cast<size_t>(layout.rows * layout.row_length));
  for (int64_t row = 0; row < layout.rows; ++row) {
    for (int64_t blk = 0; blk < layout.blocks_per_row(); ++blk) {
      const uint32_t code = codes[static_cast<size_t>(blk * layout.rows + row)];
      PGKM_ASSERT(code < k, "code ", code, " >= k ", k);
      const float* c = centroids.data() + static_cast<size_t>(code) * static_cast<size_t>(b);
      float* dst = out.data() + static_cast<size_t>(row * layout.row_length + blk * b);
      std::memcpy(dst, c, static_cast<size_t>(b) * sizeof(float));
    }
  }
}

}  // namespace pgkm
