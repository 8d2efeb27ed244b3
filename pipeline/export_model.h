// Exporting an archive to a format a runtime executes without dense weights.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace pgkm {

enum class ExportFormat {
  // A Hugging Face folder that transformers loads with the `aqlm` package: every
  // quantized Linear becomes an AQLM QuantizedLinear (one codebook, out_group_size 1).
  kAqlm,
};
const char* export_format_name(ExportFormat f);  // "aqlm"
std::optional<ExportFormat> parse_export_format(std::string_view name);

struct ExportSummary {
  size_t quantized_linears = 0;  // Linear layers stored as codes + codebooks + scales
  size_t dense_layers = 0;       // other quantized layers (embeddings, ...), written dense
  size_t kept = 0;               // tensors kept as they were
  size_t shards = 0;             // safetensors files
  size_t files = 0;              // non-weight files (config.json edited)
  int block_size = 0;            // AQLM in_group_size
  int64_t n_centroids = 0;       // K
  int nbits = 0;                 // AQLM nbits_per_codebook = ceil(log2 K)
  uint64_t bytes = 0;            // the exported folder's size
};

// Writes the model folder `out` (io/model_folder.h) in `format` from the archive at
// `archive`, which must record its source's config.json (schema v2, quantized from a
// model folder).
//
// AQLM (transformers' AqlmConfig, the aqlm package's QuantizedLinear): config.json gains
// quantization_config {quant_method "aqlm", in_group_size b, out_group_size 1,
// num_codebooks 1, nbits_per_codebook ceil(log2 K), linear_weights_not_to_quantize}; each
// quantized Linear "X.weight" [out, in] becomes
//   X.codes      [out, in/b, 1]        I8 when nbits <= 8, else I16; codes[row, blk, 0] is
//                                      the code of subvector blk*out + row (fairseq order),
//                                      stored modulo 2^nbits in two's complement
//   X.codebooks  [1, 2^nbits, 1, b]    the layer's centroids in its source dtype, padded
//                                      with zeros up to 2^nbits entries
//   X.scales     [out, 1, 1, 1]        ones, in the source dtype
// Every other tensor stays dense: quantized embeddings (and Conv2d) dequantized, kept
// tensors byte for byte. linear_weights_not_to_quantize names every other 2-D weight in
// the two spellings transformers has used: "X.weight" (4.x, exact) and "X" with its dots
// escaped (5.x, a regex anchored at module boundaries), so dense Linears stay nn.Linear.
// AQLM has one b and one K for the whole model: an archive whose quantized Linears differ
// is refused with an InputError naming the layers that differ.
ExportSummary export_model(const std::string& archive, ExportFormat format, const std::string& out);

}  // namespace pgkm
