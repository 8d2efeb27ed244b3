// Reading and writing the safetensors format (https://github.com/huggingface/safetensors):
//   [u64 little-endian N][N bytes of UTF-8 JSON header][data section]
// The header maps each tensor name to {"dtype", "shape", "data_offsets": [begin, end]},
// offsets being byte offsets into the data section; "__metadata__" holds string pairs.
//
// Every header value is untrusted (docs/CONVENTIONS.md #14): parse_header checks all of it
// before any tensor byte is read, and each failure is an InputError whose context is the
// file path and whose message names the tensor and the offending value.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "engine/dtype.h"
#include "io/mmap_file.h"

namespace pgkm::io {

// Largest header accepted, as in the reference implementation: bounds the JSON parse.
inline constexpr uint64_t kMaxHeaderBytes = 100ull << 20;
// Most dimensions a tensor may have.
inline constexpr size_t kMaxBlockSizes = 8;

// Size in bytes of one element of a safetensors dtype ("F32" -> 4), or 0 when the name
// is not one of F64 F32 F16 BF16 I64 I32 I16 I8 U8 BOOL F8_E4M3 F8_E5M2 U16 U32 U64.
size_t safetensors_dtype_size(const std::string& dtype);

// One tensor as the header describes it.
struct TensorInfo {
  std::string name;
  std::string dtype;           // safetensors spelling, e.g. "BF16"
  std::vector<int64_t> shape;  // row-major dimensions; empty for a scalar
  uint64_t data_begin = 0;     // byte offset of the first element within the data section
  uint64_t data_end = 0;       // one past the last byte, within the data section
  std::string file;            // path of the .safetensors file holding the bytes

  // Number of elements (1 for a scalar); checked against overflow when parsed.
  int64_t numel() const;
  // The engine's type for F32/F16/BF16 tensors, nullopt for types pgkm keeps as they are.
  std::optional<DType> quantizable() const;
};

// A validated header.
struct SafetensorsHeader {
  std::vector<TensorInfo> tensors;              // sorted by name
  std::map<std::string, std::string> metadata;  // "__metadata__", empty when absent
  uint64_t data_offset = 0;                     // file offset of the data section: 8 + N
  uint64_t data_size = 0;                       // bytes in the data section
};

// Parses and validates the header of a safetensors file whose whole content is
// `file_bytes`; `name` (the path) is the error context and becomes TensorInfo::file.
// Reads only the first 8 + N bytes. Throws InputError on any malformed value.
SafetensorsHeader parse_header(std::span<const std::byte> file_bytes, const std::string& name);

// One safetensors file, memory-mapped: tensor bytes are paged in only when read.
class SafetensorsFile {
 public:
  // Maps `path` and validates its header; throws InputError (context: path).
  static SafetensorsFile open(const std::string& path);

  const std::string& path() const { return map_.path(); }
  // All tensors, sorted by name.
  const std::vector<TensorInfo>& tensors() const { return header_.tensors; }
  // The tensor called `name`, or nullptr.
  const TensorInfo* find(const std::string& name) const;
  const std::map<std::string, std::string>& metadata() const { return header_.metadata; }
  // The header's JSON text (the N bytes after the length field), as validated.
  std::span<const std::byte> header_json() const {
    return map_.bytes().subspan(8, header_.data_offset - 8);
  }
  // Size of the whole file in bytes.
  uint64_t file_size() const { return map_.bytes().size(); }
  // The tensor's bytes, [data_end - data_begin], a view into the map valid while this
  // object lives. `t` must come from this file (InputError otherwise).
  std::span<const std::byte> bytes(const TensorInfo& t) const;

 private:
  SafetensorsFile(MappedFile map, SafetensorsHeader header)
      : map_(std::move(map)), header_(std::move(header)) {}

  MappedFile map_;
  SafetensorsHeader header_;
};

// A model: one .safetensors file, or a Hugging Face directory of shards.
class SafetensorsModel {
 public:
  // `path` is a .safetensors file, or a directory holding model.safetensors.index.json
  // (whose "weight_map" names the shards) or else model.safetensors. Every shard's header
  // is validated here, and the index must agree with the shards exactly: each mapped
  // tensor is in its shard, each shard tensor is mapped to that shard. Throws InputError
  // naming the index or shard file.
  static SafetensorsModel open(const std::string& path);

  // All tensors of all shards, sorted by name (names are unique across shards).
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  // The tensor called `name`, or nullptr.
  const TensorInfo* find(const std::string& name) const;
  // The tensor's bytes (see SafetensorsFile::bytes); `t` must come from this model.
  std::span<const std::byte> bytes(const TensorInfo& t) const;
  // Paths of the shard files, in the order opened (sorted by file name).
  std::vector<std::string> files() const;
  // The shard files, in the same order.
  const std::vector<SafetensorsFile>& shards() const { return shards_; }

 private:
  explicit SafetensorsModel(std::vector<SafetensorsFile> shards);

  std::vector<SafetensorsFile> shards_;
  std::vector<TensorInfo> tensors_;
};

// A tensor to write: `data` holds numel(shape) elements of `dtype`, row-major.
struct OutTensor {
  std::string name;
  std::string dtype;  // safetensors spelling
  std::vector<int64_t> shape;
  std::span<const std::byte> data;
};

// Writes a safetensors file that the Hugging Face loaders read: header padded with
// spaces to a multiple of 8 bytes, tensors laid out contiguously in name order. Writes
// `path`.tmp, fsyncs it and renames it over `path`, so a reader never sees a partial
// file; on any error the temporary is removed and `path` is left untouched. Throws
// InputError (context: path) for invalid tensors, SystemError for failed writes.
void write_safetensors(const std::string& path, const std::vector<OutTensor>& tensors,
                       const std::map<std::string, std::string>& metadata);

}  // namespace pgkm::io
