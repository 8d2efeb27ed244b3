#include "io/model_source.h"

#include <algorithm>
#include <array>
#include <filesystem>
#include <fstream>
#include <set>
#include <string_view>
#include <system_error>

#include "core/errors.h"
#include "core/file_checks.h"

namespace pgkm::io {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;

constexpr const char* kIndexName = "model.safetensors.index.json";
constexpr const char* kSingleName = "model.safetensors";
// Deepest folder recorded below the model folder (guards against symbolic link loops).
constexpr int kMaxDepth = 8;

// Extensions of weight files in formats other than safetensors: recording them would put
// the dense weights back into the archive.
constexpr std::array<std::string_view, 22> kWeightExtensions = {
    ".safetensors", ".bin",    ".pt",     ".pth",    ".ckpt",    ".h5",    ".hdf5", ".msgpack",
    ".onnx",        ".gguf",   ".ggml",   ".tflite", ".pb",      ".ot",    ".npz",  ".npy",
    ".pkl",         ".pickle", ".joblib", ".keras",  ".mlmodel", ".params"};

// Folders of Hugging Face repositories that hold the whole model again in another format.
constexpr std::array<std::string_view, 8> kExportFolders = {"onnx", "openvino", "coreml", "tflite",
                                                            "tf",   "flax",     "gguf",   "mlx"};

bool is_weight_file(const std::string& name) {
  const std::string ext = fs::path(name).extension().string();
  return std::find(kWeightExtensions.begin(), kWeightExtensions.end(), ext) !=
         kWeightExtensions.end();
}

void walk(const fs::path& dir, const std::string& prefix, int depth, SourceFileList& out) {
  std::error_code ec;
  std::vector<fs::directory_entry> entries;
  for (const auto& e : fs::directory_iterator(dir, ec))
    entries.push_back(e);
  if (ec) throw InputError(dir.string(), str_cat("cannot list the folder: ", ec.message()));
  std::sort(entries.begin(), entries.end(),
            [](const auto& a, const auto& b) { return a.path().filename() < b.path().filename(); });
  for (const fs::directory_entry& e : entries) {
    const std::string name = e.path().filename().string();
    const std::string rel = prefix.empty() ? name : prefix + "/" + name;
    if (name.starts_with(".")) continue;                      // .git, .gitattributes, .cache, ...
    const fs::file_status status = fs::status(e.path(), ec);  // follows symbolic links
    if (ec) {
      out.skipped.push_back(str_cat(rel, ": cannot be read (", ec.message(), ")"));
      continue;
    }
    if (fs::is_directory(status)) {
      if (depth >= kMaxDepth) {
        out.skipped.push_back(str_cat(rel, ": deeper than ", kMaxDepth, " folders"));
      } else {
        walk(e.path(), rel, depth + 1, out);
      }
      continue;
    }
    if (!fs::is_regular_file(status)) {
      out.skipped.push_back(str_cat(rel, ": not a regular file"));
      continue;
    }
    if (prefix.empty() && (name == kIndexName || name.ends_with(".safetensors"))) continue;
    // Weights at the top are the model again in another format; in a subfolder they are
    // another module's (a sentence-transformers Dense layer) and are kept, unless the
    // subfolder is an export of the whole model (onnx/, openvino/, ...).
    const std::string top = rel.substr(0, rel.find('/'));
    const bool export_copy =
        !prefix.empty() &&
        std::find(kExportFolders.begin(), kExportFolders.end(), top) != kExportFolders.end();
    if (is_weight_file(name) && (prefix.empty() || export_copy)) {
      out.skipped.push_back(str_cat(rel, ": the model's weights in another format"));
      continue;
    }
    const uint64_t size = fs::file_size(e.path(), ec);
    if (ec) {
      out.skipped.push_back(str_cat(rel, ": cannot be read (", ec.message(), ")"));
    } else if (size > kMaxSourceFileBytes) {
      out.skipped.push_back(
          str_cat(rel, ": ", size, " bytes, more than the ", kMaxSourceFileBytes, " recorded"));
    } else if (out.files.size() >= kMaxSourceFiles ||
               out.total_bytes() + size > kMaxSourceFilesBytes) {
      out.skipped.push_back(str_cat(rel, ": past the limit of ", kMaxSourceFiles, " files or ",
                                    kMaxSourceFilesBytes, " bytes in all"));
    } else {
      out.files.push_back({rel, e.path().string(), size});
    }
  }
}

[[noreturn]] void layout_error(const std::string& context, const std::string& message) {
  throw InputError(context, str_cat("source layout: ", message));
}

}  // namespace

uint64_t SourceFileList::total_bytes() const {
  uint64_t total = 0;
  for (const SourceFileEntry& f : files)
    total += f.size;
  return total;
}

SourceFileList list_source_files(const std::string& model_path) {
  SourceFileList out;
  std::error_code ec;
  if (!fs::is_directory(model_path, ec)) return out;
  walk(fs::path(model_path), "", 0, out);
  std::sort(out.files.begin(), out.files.end(),
            [](const auto& a, const auto& b) { return a.path < b.path; });
  return out;
}

std::vector<SourceFile> read_source_files(const SourceFileList& list) {
  std::vector<SourceFile> out;
  for (const SourceFileEntry& e : list.files) {
    // Never blocks: a file replaced by a FIFO since it was listed is refused.
    const std::string text = read_regular_file(e.location, "source file", e.size);
    // A file that changed size since it was listed fails here rather than being cut.
    PGKM_EXPECTS(text.size() == e.size, e.location, "cannot read ", e.size,
                 " bytes (the file is unreadable or changed)");
    SourceFile f{e.path, std::vector<uint8_t>(text.begin(), text.end())};
    out.push_back(std::move(f));
  }
  return out;
}

SourceLayout source_layout(const SafetensorsModel& model, const std::string& model_path) {
  SourceLayout layout;
  layout.indexed = model.indexed();
  if (!model.index_metadata_json().empty()) {
    layout.index_metadata = Json::parse(model.index_metadata_json());
  }
  std::error_code ec;
  const bool directory = fs::is_directory(model_path, ec);
  for (const SafetensorsFile& f : model.shards()) {
    SourceShard shard;
    shard.file = directory ? fs::path(f.path()).filename().string() : kSingleName;
    shard.metadata = f.metadata();
    for (const TensorInfo& t : f.tensors())
      shard.tensors.push_back(t.name);
    layout.shards.push_back(std::move(shard));
  }
  return layout;
}

std::string layout_json(const SourceLayout& layout) {
  Json doc = Json::object();
  doc["indexed"] = layout.indexed;
  doc["index_metadata"] = layout.index_metadata;
  doc["shards"] = Json::array();
  for (const SourceShard& s : layout.shards) {
    doc["shards"].push_back({{"file", s.file}, {"metadata", s.metadata}, {"tensors", s.tensors}});
  }
  return doc.dump();
}

SourceLayout parse_layout_json(const std::string& text, const std::string& context) {
  const Json doc = Json::parse(text, nullptr, false);
  if (doc.is_discarded() || !doc.is_object()) layout_error(context, "not a JSON object");
  for (const char* key : {"indexed", "index_metadata", "shards"}) {
    if (!doc.contains(key)) layout_error(context, str_cat("key '", key, "' is missing"));
  }
  SourceLayout layout;
  if (!doc["indexed"].is_boolean()) layout_error(context, "'indexed' is not a boolean");
  layout.indexed = doc["indexed"].get<bool>();
  layout.index_metadata = doc["index_metadata"];
  if (!layout.index_metadata.is_null() && !layout.index_metadata.is_object()) {
    layout_error(context, "'index_metadata' is neither null nor an object");
  }
  const Json& shards = doc["shards"];
  if (!shards.is_array() || shards.empty()) layout_error(context, "'shards' is not a list");
  if (!layout.indexed && shards.size() != 1) {
    layout_error(context, str_cat(shards.size(), " shards without an index"));
  }
  std::set<std::string> files, tensors;
  for (const Json& s : shards) {
    if (!s.is_object() || !s.contains("file") || !s["file"].is_string() ||
        !s.contains("metadata") || !s["metadata"].is_object() || !s.contains("tensors") ||
        !s["tensors"].is_array()) {
      layout_error(context, "a shard is not {file, metadata, tensors}");
    }
    SourceShard shard;
    shard.file = s["file"].get<std::string>();
    check_relative_path(shard.file, context);
    if (shard.file.find('/') != std::string::npos || !shard.file.ends_with(".safetensors")) {
      layout_error(context, str_cat("shard name '", shard.file, "' is not a plain *.safetensors"));
    }
    if (!files.insert(shard.file).second) {
      layout_error(context, str_cat("shard '", shard.file, "' is listed twice"));
    }
    for (const auto& [key, value] : s["metadata"].items()) {
      if (!value.is_string()) {
        layout_error(context,
                     str_cat("shard '", shard.file, "': metadata '", key, "' is not a string"));
      }
      shard.metadata.emplace(key, value.get<std::string>());
    }
    for (const Json& t : s["tensors"]) {
      if (!t.is_string() || t.get<std::string>().empty()) {
        layout_error(context,
                     str_cat("shard '", shard.file, "' lists a tensor that is not a name"));
      }
      if (!tensors.insert(t.get<std::string>()).second) {
        layout_error(context, str_cat("tensor '", t.get<std::string>(), "' is in two shards"));
      }
      shard.tensors.push_back(t.get<std::string>());
    }
    layout.shards.push_back(std::move(shard));
  }
  return layout;
}

void check_relative_path(const std::string& path, const std::string& context) {
  PGKM_EXPECTS(!path.empty() && path.front() != '/', context, "recorded path '", path,
               "' is not a relative path");
  size_t begin = 0;
  while (begin <= path.size()) {
    const size_t end = std::min(path.find('/', begin), path.size());
    const std::string_view part(path.data() + begin, end - begin);
    PGKM_EXPECTS(!part.empty() && part != "." && part != ".." &&
                     part.find_first_of(std::string_view("\\\0", 2)) == std::string_view::npos,
                 context, "recorded path '", path, "' has the component '", part,
                 "', which could leave the output folder");
    begin = end + 1;
  }
}

}  // namespace pgkm::io
