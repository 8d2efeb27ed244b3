// What reconstruction and export share: reading an archive's tensors back, and laying
// output tensors out in the source model's safetensors files (io/model_source.h) with
// its metadata and pgkm's own keys.
#pragma once

#include <cstddef>
#include <map>
#include <string>
#include <vector>

#include "engine/layer_record.h"
#include "io/archive.h"
#include "io/model_folder.h"
#include "io/model_source.h"

namespace pgkm {

// A tensor to write, owning its bytes.
struct OwnedTensor {
  std::string name;
  std::string dtype;  // safetensors spelling
  std::vector<int64_t> shape;
  std::vector<std::byte> bytes;
  // The source tensor this one stands for: it goes into that tensor's shard. For a
  // dense tensor its own name; for an AQLM Linear's codes, codebooks and scales, the
  // Linear's weight.
  std::string source;
};

// The dequantized weight of `layer` (centroids[codes]) in its source dtype.
OwnedTensor dequantized_tensor(const LayerRecord& layer);
// A kept tensor, byte for byte.
OwnedTensor kept_tensor(io::KeptTensor tensor);

// The source layout the archive records, or for an archive without one (schema v1) a
// single "model.safetensors" holding every tensor, with {"format": "pt"}.
io::SourceLayout archive_layout(const io::ArchiveReader& archive);

// The metadata pgkm adds to every safetensors file it writes from an archive: the
// archive's content digest (never its path, so that identical runs give identical bytes)
// and what the weights are ("dequantized", "aqlm").
std::map<std::string, std::string> pgkm_metadata(const std::string& archive_path,
                                                 const std::string& content);

// `tensors` laid out as `layout` says (each in the shard of its `source`, each shard
// with its source metadata plus `extra` metadata; an index when the source had one),
// with `files`. Throws InputError when a tensor's source is in no shard.
io::ModelFolder layout_folder(const io::SourceLayout& layout,
                              const std::vector<OwnedTensor>& tensors,
                              const std::map<std::string, std::string>& extra,
                              std::vector<io::SourceFile> files, const std::string& context);

// The metadata of a single-file output: every shard's metadata (the first shard wins a
// key given twice), then `extra`.
std::map<std::string, std::string> merged_metadata(const io::SourceLayout& layout,
                                                   const std::map<std::string, std::string>& extra);

// Views of `tensors` for io::write_safetensors.
std::vector<io::OutTensor> out_tensors(const std::vector<OwnedTensor>& tensors);

}  // namespace pgkm
