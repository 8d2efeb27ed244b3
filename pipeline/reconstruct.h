// Reading an archive back into dense weights: one safetensors file, or a whole Hugging
// Face model folder.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace pgkm {

struct ReconstructSummary {
  size_t layers = 0;    // dequantized layers written
  size_t kept = 0;      // kept tensors written unchanged
  bool folder = false;  // a model folder was written (else one .safetensors file)
  size_t shards = 0;    // safetensors files written
  size_t files = 0;     // non-weight files written (config.json, tokenizer, ...)
  uint64_t bytes = 0;   // everything written
};

// True when `out` names a model folder, i.e. it does not end in ".safetensors".
bool is_folder_output(const std::string& out);

// Dequantizes every layer of the archive at `archive` (centroids[codes], in the layer's
// source dtype) and keeps every other tensor byte for byte. When `out` ends in
// ".safetensors", writes that one file (atomically); otherwise writes the model folder
// `out` (io/model_folder.h): the non-weight files the archive recorded, the weights split
// into the source's safetensors files with an index when the source had one, each file
// with its source "__metadata__" plus pgkm_archive_digest and pgkm_content. The same
// archive always gives the same bytes. Throws InputError for a damaged archive or an
// output folder that is not empty, SystemError for a failed write.
ReconstructSummary reconstruct_model(const std::string& archive, const std::string& out);

}  // namespace pgkm
