#include "pipeline/export_model.h"

#include <algorithm>
#include <cstring>
#include <map>
#include <nlohmann/json.hpp>
#include <utility>
#include <vector>

#include "core/enum_names.h"
#include "core/errors.h"
#include "core/file_checks.h"
#include "engine/size_plan.h"
#include "io/archive.h"
#include "pipeline/model_output.h"

namespace pgkm {
namespace {

constexpr EnumNames<ExportFormat, 1> kFormatNames{{{{ExportFormat::kAqlm, "aqlm"}}}};
constexpr const char* kConfigName = "config.json";
constexpr size_t kMaxNamesShown = 8;

// `value` in the safetensors dtype `dtype` (F32, F16 or BF16), little-endian.
void put_float(std::byte* out, DType dtype, float value) {
  if (dtype == DType::F32) {
    std::memcpy(out, &value, 4);
  } else {
    const uint16_t h = dtype == DType::F16 ? float_to_f16(value) : float_to_bf16(value);
    std::memcpy(out, &h, 2);
  }
}

// "a, b, c and 5 more"
std::string some_names(const std::vector<std::string>& names) {
  std::string out;
  for (size_t i = 0; i < names.size() && i < kMaxNamesShown; ++i)
    out += (i == 0 ? "" : ", ") + names[i];
  if (names.size() > kMaxNamesShown)
    out += str_cat(" and ", names.size() - kMaxNamesShown, " more");
  return out;
}

// The one (b, K) of every quantized Linear, or an InputError naming the layers of each
// setting (the most common one first).
std::pair<int, int64_t> common_setting(const std::vector<LayerRecord>& linears,
                                       const std::string& archive) {
  std::map<std::pair<int, int64_t>, std::vector<std::string>> groups;
  for (const LayerRecord& l : linears)
    groups[{l.settings.block_size, l.settings.kmeans.n_centroids}].push_back(l.name);
  if (groups.size() == 1) return groups.begin()->first;
  std::vector<std::pair<std::pair<int, int64_t>, std::vector<std::string>>> sorted(groups.begin(),
                                                                                   groups.end());
  std::stable_sort(sorted.begin(), sorted.end(),
                   [](const auto& a, const auto& b) { return a.second.size() > b.second.size(); });
  std::string list;
  for (const auto& [setting, names] : sorted) {
    list += str_cat(list.empty() ? "" : "; ", "b=", setting.first, " K=", setting.second, " (",
                    names.size(), " layer", names.size() == 1 ? "" : "s", "): ", some_names(names));
  }
  throw InputError(archive, str_cat("AQLM needs one block size and one K for every quantized "
                                    "Linear, but the archive has ",
                                    groups.size(), ": ", list,
                                    ". Quantize every Linear with one setting "
                                    "(configs/minilm_aqlm.yaml)"));
}

// codes, codebooks and scales of one quantized Linear (see export_model.h).
void aqlm_tensors(const LayerRecord& l, int nbits, std::vector<OwnedTensor>& out) {
  const std::string module = l.name.substr(0, l.name.size() - std::string(".weight").size());
  const int64_t rows = l.shape[0];
  const int b = l.settings.block_size;
  const int64_t blocks = l.shape[1] / b;
  const DType dtype = l.source_dtype;
  const size_t fsize = dtype_size(dtype);

  const bool wide = nbits > 8;
  OwnedTensor codes{module + ".codes", wide ? "I16" : "I8", {rows, blocks, 1}, {}, l.name};
  codes.bytes.resize(static_cast<size_t>(rows * blocks) * (wide ? 2 : 1));
  for (int64_t blk = 0; blk < blocks; ++blk) {
    for (int64_t row = 0; row < rows; ++row) {
      const uint32_t code = l.codes[static_cast<size_t>(blk * rows + row)];
      const size_t at = static_cast<size_t>(row * blocks + blk);
      // Two's complement of code mod 2^nbits: 200 is stored as int8 -56 (aqlm reads
      // codes modulo 2^nbits).
      if (wide) {
        const auto v = static_cast<uint16_t>(code);
        std::memcpy(codes.bytes.data() + 2 * at, &v, 2);
      } else {
        codes.bytes[at] = static_cast<std::byte>(code & 0xff);
      }
    }
  }
  const int64_t entries = int64_t{1} << nbits;
  OwnedTensor codebooks{module + ".codebooks", dtype_name(dtype), {1, entries, 1, b}, {}, l.name};
  codebooks.bytes.assign(static_cast<size_t>(entries * b) * fsize, std::byte{0});
  for (size_t i = 0; i < l.centroids.size(); ++i)
    put_float(codebooks.bytes.data() + i * fsize, dtype, l.centroids[i]);
  OwnedTensor scales{module + ".scales", dtype_name(dtype), {rows, 1, 1, 1}, {}, l.name};
  scales.bytes.resize(static_cast<size_t>(rows) * fsize);
  for (int64_t row = 0; row < rows; ++row)
    put_float(scales.bytes.data() + static_cast<size_t>(row) * fsize, dtype, 1.0f);
  out.push_back(std::move(codes));
  out.push_back(std::move(codebooks));
  out.push_back(std::move(scales));
}

// "encoder.layer.0.dense" -> "encoder\.layer\.0\.dense"
std::string escape_regex(const std::string& name) {
  std::string out;
  for (char c : name) {
    if (std::strchr(".^$*+?()[]{}|\\", c) != nullptr) out += '\\';
    out += c;
  }
  return out;
}

// config.json with quantization_config added; key order and everything else unchanged.
io::SourceFile aqlm_config(const io::SourceFile& config, int b, int nbits,
                           const std::vector<std::string>& not_quantized,
                           const std::string& archive) {
  const std::string text(config.bytes.begin(), config.bytes.end());
  nlohmann::ordered_json doc = nlohmann::ordered_json::parse(text, nullptr, false);
  PGKM_EXPECTS(!doc.is_discarded() && doc.is_object(), archive,
               "the recorded config.json is not a JSON object");
  PGKM_EXPECTS(!doc.contains("quantization_config"), archive,
               "the recorded config.json already has a quantization_config");
  doc["quantization_config"] = {
      {"quant_method", "aqlm"},      {"in_group_size", b},
      {"out_group_size", 1},         {"num_codebooks", 1},
      {"nbits_per_codebook", nbits}, {"linear_weights_not_to_quantize", not_quantized}};
  const std::string out = doc.dump(2) + "\n";
  return {config.path, std::vector<uint8_t>(out.begin(), out.end())};
}

}  // namespace

const char* export_format_name(ExportFormat f) {
  return kFormatNames.name(f);
}

std::optional<ExportFormat> parse_export_format(std::string_view name) {
  return kFormatNames.parse(name);
}

ExportSummary export_model(const std::string& archive_path, ExportFormat format,
                           const std::string& out) {
  PGKM_ASSERT(format == ExportFormat::kAqlm);
  check_output_clashes({{"--out", out}}, {{"the archive", archive_path}});
  const io::ArchiveReader archive = io::ArchiveReader::open(archive_path);
  std::vector<io::SourceFile> files = archive.read_source_files();
  auto config = std::find_if(files.begin(), files.end(),
                             [](const io::SourceFile& f) { return f.path == kConfigName; });
  PGKM_EXPECTS(config != files.end(), archive_path,
               "the archive records no config.json of its source (it was quantized from a "
               "single .safetensors file, or by a pgkm older than archive schema v2); quantize "
               "the model's folder to export it");

  std::vector<LayerRecord> linears;
  std::vector<OwnedTensor> tensors;
  std::vector<std::string> dense_weights;  // 2-D weights that stay dense
  ExportSummary summary;
  for (const std::string& name : archive.layer_names()) {
    LayerRecord l = archive.read_layer(name);
    // AQLM's dequantization is codebooks[codes] * scales with one scale per output row
    // (aqlm's `scales`); per-input-column scales do not fold into that, so a weighted
    // Linear cannot be exported as codes (docs/CONFIG.md, "Importance").
    PGKM_EXPECTS(!(l.importance_weighted() && l.module_type == ModuleType::kLinear), archive_path,
                 "quantized Linear '", name,
                 "' is importance-weighted (per-input-column scales, pgkm quantize "
                 "--importance); AQLM stores only per-output-row scales, so it cannot be "
                 "exported; quantize without --importance for AQLM, or use pgkm reconstruct");
    if (l.module_type == ModuleType::kLinear && l.shape.size() == 2) {
      PGKM_EXPECTS(name.ends_with(".weight"), archive_path, "quantized Linear '", name,
                   "' is not named <module>.weight, so its AQLM module has no name");
      linears.push_back(std::move(l));
    } else {
      if (l.shape.size() == 2) dense_weights.push_back(name);
      tensors.push_back(dequantized_tensor(l));
      ++summary.dense_layers;
    }
  }
  PGKM_EXPECTS(!linears.empty(), archive_path, "the archive has no quantized Linear layer");
  const auto [b, k] = common_setting(linears, archive_path);
  const int nbits = code_bits(k);
  for (const LayerRecord& l : linears)
    aqlm_tensors(l, nbits, tensors);
  summary.quantized_linears = linears.size();
  linears.clear();
  for (const std::string& name : archive.kept_names()) {
    io::KeptTensor t = archive.read_kept(name);
    if (t.shape.size() == 2) dense_weights.push_back(name);
    tensors.push_back(kept_tensor(std::move(t)));
    ++summary.kept;
  }
  std::sort(dense_weights.begin(), dense_weights.end());
  std::vector<std::string> not_quantized;
  for (const std::string& name : dense_weights) {
    if (!name.ends_with(".weight")) continue;
    not_quantized.push_back(name);
    not_quantized.push_back(escape_regex(name.substr(0, name.size() - 7)));
  }
  *config = aqlm_config(*config, b, nbits, not_quantized, archive_path);

  io::ModelFolder folder =
      layout_folder(archive_layout(archive), tensors, pgkm_metadata(archive_path, "aqlm"),
                    std::move(files), archive_path);
  summary.shards = folder.shards.size();
  summary.files = folder.files.size();
  summary.block_size = b;
  summary.n_centroids = k;
  summary.nbits = nbits;
  summary.bytes = io::write_model_folder(out, folder);
  return summary;
}

}  // namespace pgkm
