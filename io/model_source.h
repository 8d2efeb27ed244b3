// What an archive records about the model it came from, so that `pgkm reconstruct` and
// `pgkm export` can write a whole Hugging Face model folder from the archive alone:
//
//   SourceLayout  how the weights were split into safetensors files (the shards, each
//                 with its tensors and its "__metadata__", and the index's "metadata");
//   SourceFile    the folder's other files (config.json, tokenizer files, README,
//                 sentence-transformers files and subfolders such as 1_Pooling), byte for
//                 byte, within the limits below.
//
// Why the archive records them instead of reconstruct taking the source folder again:
// the archive is the one file that is shipped; the source folder may be gone, and a
// folder given later could be another revision whose config or tokenizer does not match
// the weights. The files are small (MiniLM: 12 files, 0.7 MiB; a 7B LLM's tokenizer and
// configs: a few MiB), far below the weights. docs/ARCHIVE.md, schema v2, "/source".
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "io/safetensors.h"

namespace pgkm::io {

// Limits on the non-weight files recorded: a larger file, or one past the total, is
// left out with a warning (the weights never are).
inline constexpr uint64_t kMaxSourceFileBytes = 32ull << 20;
inline constexpr uint64_t kMaxSourceFilesBytes = 128ull << 20;
inline constexpr size_t kMaxSourceFiles = 4096;

// One safetensors file of the source.
struct SourceShard {
  std::string file;                             // plain file name, e.g. "model.safetensors"
  std::map<std::string, std::string> metadata;  // its "__metadata__"
  std::vector<std::string> tensors;             // the tensors it holds, sorted
};

struct SourceLayout {
  // The source had model.safetensors.index.json; then index_metadata is its "metadata"
  // object (or null when it had none), and outputs are sharded the same way with an index.
  bool indexed = false;
  nlohmann::json index_metadata;
  std::vector<SourceShard> shards;  // in file-name order
};

// One non-weight file of the source folder.
struct SourceFile {
  std::string path;            // relative, '/'-separated, e.g. "1_Pooling/config.json"
  std::vector<uint8_t> bytes;  // the content, unchanged
};

// A non-weight file found in the source folder, not yet read.
struct SourceFileEntry {
  std::string path;      // relative, '/'-separated
  std::string location;  // where to read it
  uint64_t size = 0;
};

struct SourceFileList {
  std::vector<SourceFileEntry> files;  // sorted by path
  std::vector<std::string> skipped;    // "path: reason" for each file left out
  uint64_t total_bytes() const;
};

// The files to record from `model_path`: none when it is a .safetensors file; for a
// directory, every regular file under it (symbolic links followed, as in a Hugging Face
// cache snapshot) except hidden entries (".git", ".gitattributes", ...), the safetensors
// weights and their index (reconstructed from the archive), weights in other formats
// (".bin", ".pt", ".onnx", ".gguf", ...: they would hold the dense weights again), and
// files past the limits above (those are listed in `skipped`).
SourceFileList list_source_files(const std::string& model_path);
// Reads the listed files. Throws InputError naming a file that cannot be read.
std::vector<SourceFile> read_source_files(const SourceFileList& list);

// The layout of `model`; `model_path` is what SafetensorsModel::open was given (a
// single .safetensors file is recorded as one shard "model.safetensors").
SourceLayout source_layout(const SafetensorsModel& model, const std::string& model_path);

// The layout as JSON text (deterministic), and back. parse_layout_json checks every value
// (plain shard names, each tensor in one shard, string metadata) and throws
// InputError(context, ...) naming the bad one.
std::string layout_json(const SourceLayout& layout);
SourceLayout parse_layout_json(const std::string& text, const std::string& context);

// Throws InputError(context, ...) unless `path` is a safe relative file path: not empty,
// '/'-separated components none of which is empty, ".", ".." or holds '\' or NUL, and not
// absolute. Every recorded path is checked when read, since outputs are written there.
void check_relative_path(const std::string& path, const std::string& context);

}  // namespace pgkm::io
