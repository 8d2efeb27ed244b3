#include "engine/layout.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>

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

// Tensors smaller than this are converted and checked on one thread.
constexpr int64_t kParallelElements = int64_t{1} << 16;

// Rows converted together: consecutive rows of one block are consecutive
// subvectors, so a tile writes runs of kRowTile * b floats instead of single
// subvectors spread over the whole output.
constexpr int64_t kRowTile = 16;

template <DType T>
float load(const std::byte* base, size_t index) {
  if constexpr (T == DType::F32) {
    float v;
    std::memcpy(&v, base + index * 4, 4);
    return v;
  } else {
    uint16_t h;
    std::memcpy(&h, base + index * 2, 2);
    return T == DType::F16 ? f16_to_float(h) : bf16_to_float(h);
  }
}

// Calls f(std::integral_constant<DType, t>{}): one instantiation per dtype, so the
// per-element loops carry no switch.
template <typename F>
auto with_dtype(DType t, F&& f) {
  switch (t) {
    case DType::F16:
      return f(std::integral_constant<DType, DType::F16>{});
    case DType::BF16:
      return f(std::integral_constant<DType, DType::BF16>{});
    case DType::F32:
      break;
  }
  return f(std::integral_constant<DType, DType::F32>{});
}

// numel of w's shape, after checking that the bytes match shape and dtype.
size_t checked_numel(const WeightView& w) {
  int64_t numel = 1;
  for (int64_t d : w.shape)
    numel *= d;
  PGKM_EXPECTS(w.bytes.size() == static_cast<size_t>(numel) * dtype_size(w.dtype), w.name, "holds ",
               w.bytes.size(), " bytes but shape ", shape_text(w.shape), " of ",
               dtype_name(w.dtype), " needs ", static_cast<size_t>(numel) * dtype_size(w.dtype));
  return static_cast<size_t>(numel);
}

[[noreturn]] void throw_non_finite(const WeightView& w, size_t i) {
  const float v = with_dtype(w.dtype, [&](auto t) { return load<t()>(w.bytes.data(), i); });
  const int64_t numel = static_cast<int64_t>(w.bytes.size() / dtype_size(w.dtype));
  const int64_t row_length = w.shape.empty() ? 1 : numel / std::max<int64_t>(w.shape[0], 1);
  throw InputError(w.name, str_cat("element ", i, " (row ", static_cast<int64_t>(i) / row_length,
                                   ", column ", static_cast<int64_t>(i) % row_length, ") is ", v,
                                   "; only finite weights can be quantized"));
}

// The lowest index of a non-finite element among the n at `src`, or n when there
// is none. The lowest is the same whatever the split between threads, so the error
// names the element a serial scan would find first.
template <DType T>
size_t first_non_finite(const std::byte* src, size_t n) {
  const auto count = static_cast<int64_t>(n);
  int64_t first_bad = count;
#pragma omp parallel for schedule(static) reduction(min : first_bad) if (count >= kParallelElements)
  for (int64_t i = 0; i < count; ++i) {
    if (!std::isfinite(load<T>(src, static_cast<size_t>(i)))) first_bad = std::min(first_bad, i);
  }
  return static_cast<size_t>(first_bad);
}

// Converts the tensor at `src` (row-major, type T) into `dst` in PQ order
// ([n_vectors, b]) and returns the lowest index of a non-finite element, or
// rows * row_length when there is none. Each tile of rows writes its own
// subvectors, so threads never share an output element.
template <DType T>
size_t convert_to_blocks(const std::byte* src, const BlockLayout& layout, float* dst) {
  const int64_t rows = layout.rows;
  const int64_t blocks = layout.blocks_per_row();
  const int64_t b = layout.block_size;
  const int64_t numel = rows * layout.row_length;
  const int64_t tiles = (rows + kRowTile - 1) / kRowTile;
  int64_t first_bad = numel;
#pragma omp parallel for schedule(static) reduction(min : first_bad) if (numel >= kParallelElements)
  for (int64_t tile = 0; tile < tiles; ++tile) {
    const int64_t row_end = std::min(rows, (tile + 1) * kRowTile);
    for (int64_t blk = 0; blk < blocks; ++blk) {
      for (int64_t row = tile * kRowTile; row < row_end; ++row) {
        const int64_t from = row * layout.row_length + blk * b;
        float* to = dst + (blk * rows + row) * b;
        for (int64_t d = 0; d < b; ++d) {
          const float v = load<T>(src, static_cast<size_t>(from + d));
          to[d] = v;
          if (!std::isfinite(v)) first_bad = std::min(first_bad, from + d);
        }
      }
    }
  }
  return static_cast<size_t>(first_bad);
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
  const size_t numel = checked_numel(w);
  const size_t first_bad =
      with_dtype(w.dtype, [&](auto t) { return first_non_finite<t()>(w.bytes.data(), numel); });
  if (first_bad < numel) throw_non_finite(w, first_bad);
}

float max_abs_value(const WeightView& w) {
  const size_t numel = checked_numel(w);
  return with_dtype(w.dtype, [&](auto t) {
    float m = 0;
#pragma omp parallel for reduction(max : m) if (numel >= static_cast <size_t>(kParallelElements))
    for (size_t i = 0; i < numel; ++i)
      m = std::max(m, std::fabs(load<t()>(w.bytes.data(), i)));
    return m;
  });
}

std::vector<float> extract_subvectors(const WeightView& w, const BlockLayout& layout) {
  checked_numel(w);
  std::vector<float> vectors(static_cast<size_t>(layout.rows * layout.row_length));
  const size_t first_bad = with_dtype(w.dtype, [&](auto t) {
    return convert_to_blocks<t()>(w.bytes.data(), layout, vectors.data());
  });
  if (first_bad < vectors.size()) throw_non_finite(w, first_bad);
  return vectors;
}

void scale_subvectors(const BlockLayout& layout, std::span<const float> column_scales,
                      std::span<float> vectors) {
  const int b = layout.block_size;
  PGKM_ASSERT(column_scales.size() == static_cast<size_t>(layout.row_length));
  PGKM_ASSERT(vectors.size() == static_cast<size_t>(layout.n_vectors() * b));
  for (int64_t blk = 0; blk < layout.blocks_per_row(); ++blk) {
    const float* s = column_scales.data() + static_cast<size_t>(blk * b);
    for (int64_t row = 0; row < layout.rows; ++row) {
      float* v = vectors.data() + static_cast<size_t>((blk * layout.rows + row) * b);
      for (int d = 0; d < b; ++d)
        v[d] *= s[d];
    }
  }
}

void reconstruct_weight(const BlockLayout& layout, std::span<const float> centroids,
                        std::span<const uint32_t> codes, std::span<float> out,
                        std::span<const float> column_scales) {
  PGKM_ASSERT(column_scales.empty() ||
              column_scales.size() == static_cast<size_t>(layout.row_length));
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
      if (column_scales.empty()) continue;
      const float* s = column_scales.data() + static_cast<size_t>(blk * b);
      for (int d = 0; d < b; ++d)
        dst[d] = dst[d] / s[d];
    }
  }
}

}  // namespace pgkm
