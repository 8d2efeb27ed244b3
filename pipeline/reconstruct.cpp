#include "pipeline/reconstruct.h"

#include <cstring>
#include <vector>

#include "engine/layer_record.h"
#include "engine/layout.h"
#include "io/archive.h"
#include "io/safetensors.h"

namespace pgkm {
namespace {

// The dequantized weight in the layer's source dtype, little-endian bytes.
std::vector<std::byte> dequantize(const LayerRecord& l) {
  const BlockLayout layout = make_block_layout(l.name, l.shape, l.settings.block_size);
  std::vector<float> weight(static_cast<size_t>(element_count(l.shape)));
  reconstruct_weight(layout, l.centroids, l.codes, weight);
  const DType dtype = l.source_dtype;
  std::vector<std::byte> bytes(weight.size() * dtype_size(dtype));
  for (size_t i = 0; i < weight.size(); ++i) {
    if (dtype == DType::F32) {
      std::memcpy(bytes.data() + 4 * i, &weight[i], 4);
    } else {
      const uint16_t h = dtype == DType::F16 ? float_to_f16(weight[i]) : float_to_bf16(weight[i]);
      std::memcpy(bytes.data() + 2 * i, &h, 2);
    }
  }
  return bytes;
}

}  // namespace

ReconstructSummary reconstruct_model(const std::string& archive_path, const std::string& out) {
  const io::ArchiveReader archive = io::ArchiveReader::open(archive_path);
  std::vector<LayerRecord> layers;
  std::vector<std::vector<std::byte>> weights;
  for (const std::string& name : archive.layer_names()) {
    layers.push_back(archive.read_layer(name));
    weights.push_back(dequantize(layers.back()));
  }
  std::vector<io::KeptTensor> kept;
  for (const std::string& name : archive.kept_names())
    kept.push_back(archive.read_kept(name));
  std::vector<io::OutTensor> tensors;
  for (size_t i = 0; i < layers.size(); ++i) {
    tensors.push_back(
        {layers[i].name, dtype_name(layers[i].source_dtype), layers[i].shape, weights[i]});
  }
  for (const io::KeptTensor& t : kept) {
    tensors.push_back({t.name, t.dtype, t.shape, std::as_bytes(std::span(t.bytes))});
  }
  io::write_safetensors(out, tensors, {{"format", "pt"}, {"pgkm_archive", archive_path}});
  return {layers.size(), kept.size()};
}

}  // namespace pgkm
