// Writing a Hugging Face model folder: non-weight files, safetensors shards and, for a
// sharded model, model.safetensors.index.json. The folder appears whole or not at all.
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "io/model_source.h"
#include "io/safetensors.h"

namespace pgkm::io {

// One safetensors file of the folder.
struct FolderShard {
  std::string file;  // plain name, e.g. "model-00001-of-00002.safetensors"
  std::map<std::string, std::string> metadata;  // its "__metadata__"
  std::vector<OutTensor> tensors;
};

struct ModelFolder {
  std::vector<SourceFile> files;  // config.json, tokenizer files, ... (relative paths)
  std::vector<FolderShard> shards;
  // When set (an object, possibly empty), model.safetensors.index.json is written: this
  // "metadata" with "total_size" (the tensors' bytes) filled in, and a "weight_map".
  std::optional<nlohmann::json> index_metadata;
};

// Writes `folder` to directory `dir`. Everything goes into a fresh sibling directory
// "<dir>.tmp-XXXXXX" first, every file written atomically and fsynced
// (core/atomic_file.h), which is then renamed to `dir`; on any error it is removed and
// `dir` is untouched. `dir` must not exist or be an empty directory (InputError
// otherwise: pgkm never deletes a folder of the user's). The bytes are a function of
// `folder` alone (sorted names, no time stamps). Returns the folder's size in bytes.
uint64_t write_model_folder(const std::string& dir, const ModelFolder& folder);

// The size in bytes of every regular file under `dir`.
uint64_t folder_bytes(const std::string& dir);

}  // namespace pgkm::io
