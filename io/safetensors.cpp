#include "io/safetensors.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <string_view>
#include <utility>

#include "core/atomic_file.h"
#include "core/errors.h"
#include "core/file_checks.h"
#include "core/text.h"

namespace pgkm::io {
namespace {

using Json = nlohmann::json;
namespace fs = std::filesystem;

constexpr uint64_t kLengthField = 8;  // the u64 header length that opens every file
// Deepest valid header: root object > tensor entry > shape array.
constexpr int kMaxHeaderDepth = 3;
// Index metadata is free-form; this only bounds the parser's work on hostile input.
constexpr int kMaxIndexDepth = 64;
constexpr size_t kMaxValueChars = 80;  // longest JSON value quoted in an error message

struct DTypeSize {
  const char* name;
  size_t size;
};
constexpr DTypeSize kDTypes[] = {{"F64", 8}, {"F32", 4},  {"F16", 2},     {"BF16", 2},
                                 {"I64", 8}, {"I32", 4},  {"I16", 2},     {"I8", 1},
                                 {"U8", 1},  {"BOOL", 1}, {"F8_E4M3", 1}, {"F8_E5M2", 1},
                                 {"U16", 2}, {"U32", 4},  {"U64", 8}};

// A JSON value as an error message shows it: compact, and cut short when long.
std::string show(const Json& v) {
  std::string s = v.dump(-1, ' ', false, Json::error_handler_t::replace);
  if (s.size() > kMaxValueChars) s = s.substr(0, kMaxValueChars) + "...";
  return s;
}

[[noreturn]] void tensor_error(const std::string& file, const std::string& tensor,
                               const std::string& message) {
  throw InputError(file, str_cat("tensor '", tensor, "': ", message));
}

// Parses `text`, rejecting what nlohmann would accept silently: a repeated key (it keeps
// the last one, so two readers could disagree on the file) and nesting beyond
// `max_depth` (no valid file needs it; it only costs memory).
Json parse_strict(std::string_view text, const std::string& file, const char* what, int max_depth) {
  std::vector<std::set<std::string>> open_objects;
  int depth = 0;
  auto check = [&](int /*depth*/, Json::parse_event_t event, Json& parsed) {
    switch (event) {
      case Json::parse_event_t::object_start:
        open_objects.emplace_back();
        [[fallthrough]];
      case Json::parse_event_t::array_start:
        PGKM_EXPECTS(++depth <= max_depth, file, what, " nests deeper than ", max_depth, " levels");
        break;
      case Json::parse_event_t::object_end:
        open_objects.pop_back();
        [[fallthrough]];
      case Json::parse_event_t::array_end:
        --depth;
        break;
      case Json::parse_event_t::key:
        PGKM_EXPECTS(open_objects.back().insert(parsed.get<std::string>()).second, file, what,
                     " has duplicate key '", parsed.get<std::string>(), "'");
        break;
      case Json::parse_event_t::value:
        break;
    }
    return true;
  };
  try {
    return Json::parse(text.begin(), text.end(), check);
  } catch (const Json::exception& e) {
    throw InputError(file, str_cat(what, " is not valid JSON: ", e.what()));
  }
}

// Bytes of `shape` elements of `dtype`; rejects unknown dtypes, negative or too many
// dimensions, and element counts or byte sizes that do not fit 64 bits.
uint64_t tensor_nbytes(const std::string& file, const std::string& tensor, const std::string& dtype,
                       const std::vector<int64_t>& shape) {
  const size_t esize = safetensors_dtype_size(dtype);
  if (esize == 0) tensor_error(file, tensor, str_cat("unknown dtype '", dtype, "'"));
  if (shape.size() > kMaxBlockSizes)
    tensor_error(file, tensor,
                 str_cat("shape ", shape_text(shape), " has ", shape.size(),
                         " dimensions, more than ", kMaxBlockSizes));
  bool empty = false;
  for (int64_t d : shape) {
    if (d < 0)
      tensor_error(file, tensor,
                   str_cat("shape ", shape_text(shape), " has negative dimension ", d));
    empty = empty || d == 0;
  }
  if (empty) return 0;
  uint64_t numel = 1;
  constexpr auto kMaxNumel = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
  for (int64_t d : shape) {
    if (numel > kMaxNumel / static_cast<uint64_t>(d))
      tensor_error(file, tensor,
                   str_cat("shape ", shape_text(shape), " element count overflows 64 bits"));
    numel *= static_cast<uint64_t>(d);
  }
  if (numel > std::numeric_limits<uint64_t>::max() / esize)
    tensor_error(
        file, tensor,
        str_cat("shape ", shape_text(shape), " of ", dtype, " needs more than 2^64 bytes"));
  return numel * esize;
}

std::vector<int64_t> parse_shape(const std::string& file, const std::string& tensor,
                                 const Json& v) {
  if (!v.is_array() || v.size() > kMaxBlockSizes)
    tensor_error(
        file, tensor,
        str_cat("shape ", show(v), " is not an array of at most ", kMaxBlockSizes, " integers"));
  std::vector<int64_t> shape;
  for (const Json& d : v) {
    const bool fits =
        d.is_number_integer() &&
        (!d.is_number_unsigned() ||
         d.get<uint64_t>() <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max()));
    if (!fits)
      tensor_error(
          file, tensor,
          str_cat("shape ", show(v), " has dimension ", show(d), ", not a 64-bit integer"));
    shape.push_back(d.get<int64_t>());
  }
  return shape;
}

// One header entry, checked on its own; overlaps are checked across entries later.
TensorInfo parse_entry(const std::string& file, const std::string& name, const Json& entry,
                       uint64_t data_size) {
  if (name.empty()) throw InputError(file, "header has a tensor with an empty name");
  if (!entry.is_object())
    tensor_error(file, name, str_cat("entry ", show(entry), " is not an object"));
  for (const auto& [key, value] : entry.items()) {
    if (key != "dtype" && key != "shape" && key != "data_offsets")
      tensor_error(file, name, str_cat("unknown key '", key, "'"));
  }
  for (const char* key : {"dtype", "shape", "data_offsets"}) {
    if (!entry.contains(key)) tensor_error(file, name, str_cat("missing key '", key, "'"));
  }
  TensorInfo t;
  t.name = name;
  t.file = file;
  const Json& dtype = entry["dtype"];
  if (!dtype.is_string())
    tensor_error(file, name, str_cat("dtype ", show(dtype), " is not a string"));
  t.dtype = dtype.get<std::string>();
  t.shape = parse_shape(file, name, entry["shape"]);
  const uint64_t nbytes = tensor_nbytes(file, name, t.dtype, t.shape);

  const Json& offsets = entry["data_offsets"];
  if (!offsets.is_array() || offsets.size() != 2 || !offsets[0].is_number_unsigned() ||
      !offsets[1].is_number_unsigned())
    tensor_error(file, name,
                 str_cat("data_offsets ", show(offsets),
                         " is not a pair [begin, end] of unsigned 64-bit integers"));
  t.data_begin = offsets[0].get<uint64_t>();
  t.data_end = offsets[1].get<uint64_t>();
  const std::string where = str_cat("data_offsets [", t.data_begin, ", ", t.data_end, "]");
  if (t.data_begin > t.data_end)
    tensor_error(file, name, str_cat(where, ": begin ", t.data_begin, " > end ", t.data_end));
  if (t.data_end > data_size)
    tensor_error(file, name,
                 str_cat(where, ": end is beyond the data section of ", data_size, " bytes"));
  if (t.data_end - t.data_begin != nbytes)
    tensor_error(file, name,
                 str_cat(where, " hold ", t.data_end - t.data_begin, " bytes but shape ",
                         shape_text(t.shape), " of ", t.dtype, " needs ", nbytes));
  return t;
}

std::map<std::string, std::string> parse_metadata(const std::string& file, const Json& v) {
  if (!v.is_object())
    throw InputError(file, str_cat("__metadata__ ", show(v), " is not an object of strings"));
  std::map<std::string, std::string> out;
  for (const auto& [key, value] : v.items()) {
    if (!value.is_string())
      throw InputError(file, str_cat("__metadata__ value for key '", key, "' is ", show(value),
                                     ", not a string"));
    out.emplace(key, value.get<std::string>());
  }
  return out;
}

// Zero-size tensors occupy no bytes, so they may sit anywhere, even inside another.
void check_no_overlap(const std::string& file, const std::vector<TensorInfo>& tensors) {
  std::vector<const TensorInfo*> by_offset;
  for (const TensorInfo& t : tensors) {
    if (t.data_end > t.data_begin) by_offset.push_back(&t);
  }
  std::sort(by_offset.begin(), by_offset.end(),
            [](const TensorInfo* a, const TensorInfo* b) { return a->data_begin < b->data_begin; });
  for (size_t i = 1; i < by_offset.size(); ++i) {
    const TensorInfo& a = *by_offset[i - 1];
    const TensorInfo& b = *by_offset[i];
    if (b.data_begin < a.data_end)
      throw InputError(file, str_cat("tensors '", a.name, "' data_offsets [", a.data_begin, ", ",
                                     a.data_end, "] and '", b.name, "' data_offsets [",
                                     b.data_begin, ", ", b.data_end, "] overlap"));
  }
}

}  // namespace

size_t safetensors_dtype_size(const std::string& dtype) {
  for (const DTypeSize& d : kDTypes) {
    if (dtype == d.name) return d.size;
  }
  return 0;
}

int64_t TensorInfo::numel() const {
  int64_t n = 1;
  for (int64_t d : shape)
    n *= d;
  return n;
}

std::optional<DType> TensorInfo::quantizable() const {
  if (dtype == "F32") return DType::F32;
  if (dtype == "F16") return DType::F16;
  if (dtype == "BF16") return DType::BF16;
  return std::nullopt;
}

SafetensorsHeader parse_header(std::span<const std::byte> file_bytes, const std::string& name) {
  const uint64_t size = file_bytes.size();
  PGKM_EXPECTS(size >= kLengthField, name, "file is ", size,
               " bytes, shorter than the 8-byte header length field");
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i)
    n = (n << 8) | std::to_integer<uint64_t>(file_bytes[i]);
  PGKM_EXPECTS(n >= 2, name, "header length ", n, " is too small to hold a JSON object");
  PGKM_EXPECTS(n <= kMaxHeaderBytes, name, "header length ", n, " exceeds the limit of ",
               kMaxHeaderBytes, " bytes (100 MiB)");
  PGKM_EXPECTS(n <= size - kLengthField, name, "header length ", n, " exceeds the ",
               size - kLengthField, " bytes after the length field");

  SafetensorsHeader h;
  h.data_offset = kLengthField + n;
  h.data_size = size - h.data_offset;
  const std::string_view text(reinterpret_cast<const char*>(file_bytes.data()) + kLengthField, n);
  const Json root = parse_strict(text, name, "header", kMaxHeaderDepth);
  PGKM_EXPECTS(root.is_object(), name, "header ", show(root), " is not a JSON object");
  // nlohmann::json keeps object keys in a std::map, so entries come sorted by name.
  for (const auto& [key, value] : root.items()) {
    if (key == "__metadata__") {
      h.metadata = parse_metadata(name, value);
    } else {
      h.tensors.push_back(parse_entry(name, key, value, h.data_size));
    }
  }
  check_no_overlap(name, h.tensors);
  return h;
}

SafetensorsFile SafetensorsFile::open(const std::string& path) {
  MappedFile map(path);
  SafetensorsHeader header = parse_header(map.bytes(), path);
  return SafetensorsFile(std::move(map), std::move(header));
}

const TensorInfo* SafetensorsFile::find(const std::string& name) const {
  const auto& ts = header_.tensors;
  auto it = std::lower_bound(ts.begin(), ts.end(), name,
                             [](const TensorInfo& t, const std::string& n) { return t.name < n; });
  return it != ts.end() && it->name == name ? &*it : nullptr;
}

std::span<const std::byte> SafetensorsFile::bytes(const TensorInfo& t) const {
  PGKM_EXPECTS(t.file == path() && t.data_begin <= t.data_end && t.data_end <= header_.data_size,
               path(), "tensor '", t.name, "' with data_offsets [", t.data_begin, ", ", t.data_end,
               "] from '", t.file, "' is not a tensor of this file");
  return map_.bytes().subspan(header_.data_offset + t.data_begin, t.data_end - t.data_begin);
}

namespace {

constexpr const char* kIndexName = "model.safetensors.index.json";
constexpr const char* kSingleName = "model.safetensors";

// Shard names come from a downloaded file: only plain names inside the model directory
// are accepted, so an index cannot make pgkm read elsewhere.
void check_shard_name(const std::string& index, const std::string& tensor,
                      const std::string& shard) {
  const bool plain = !shard.empty() && shard != "." && shard != ".." &&
                     shard.find_first_of(std::string_view("/\\\0", 3)) == std::string::npos;
  if (!plain)
    throw InputError(index, str_cat("weight_map entry '", tensor, "': shard name '", shard,
                                    "' is not a plain file name in the model directory"));
}

// Reads the index's weight_map: tensor name -> shard file name; `metadata` gets the
// index's "metadata" object as JSON text ("" when absent).
std::map<std::string, std::string> read_weight_map(const std::string& index,
                                                   std::string& metadata) {
  MappedFile map(index);
  PGKM_EXPECTS(map.bytes().size() <= kMaxHeaderBytes, index, "index is ", map.bytes().size(),
               " bytes, more than the limit of ", kMaxHeaderBytes);
  const std::string_view text(reinterpret_cast<const char*>(map.bytes().data()),
                              map.bytes().size());
  const Json root = parse_strict(text, index, "index", kMaxIndexDepth);
  PGKM_EXPECTS(root.is_object(), index, "index ", show(root), " is not a JSON object");
  // Other top-level keys are tolerated: the index format is informal and tools add some.
  PGKM_EXPECTS(root.contains("weight_map"), index, "index has no \"weight_map\"");
  const Json& wm = root["weight_map"];
  PGKM_EXPECTS(wm.is_object() && !wm.empty(), index, "weight_map ", show(wm),
               " is not a non-empty object");
  PGKM_EXPECTS(!root.contains("metadata") || root["metadata"].is_object(), index, "metadata ",
               show(root["metadata"]), " is not an object");
  if (root.contains("metadata")) metadata = root["metadata"].dump();
  std::map<std::string, std::string> out;
  for (const auto& [tensor, shard] : wm.items()) {
    PGKM_EXPECTS(shard.is_string(), index, "weight_map entry '", tensor, "' is ", show(shard),
                 ", not a shard file name");
    check_shard_name(index, tensor, shard.get<std::string>());
    out.emplace(tensor, shard.get<std::string>());
  }
  return out;
}

// Opens every shard the index names and checks that index and shards agree exactly.
std::vector<SafetensorsFile> open_sharded(const fs::path& dir, std::string& metadata) {
  const std::string index = (dir / kIndexName).string();
  const std::map<std::string, std::string> weight_map = read_weight_map(index, metadata);
  std::map<std::string, size_t> shard_of_name;  // shard file name -> position in `shards`
  std::vector<SafetensorsFile> shards;
  for (const auto& [tensor, shard] : weight_map) {
    if (shard_of_name.count(shard)) continue;
    const fs::path p = dir / shard;
    std::error_code ec;
    if (fs::exists(p, ec)) require_regular_file(p.string(), str_cat("shard '", shard, "'"));
    PGKM_EXPECTS(fs::is_regular_file(p, ec), index, "shard '", shard,
                 "' named by weight_map (for '", tensor, "') does not exist in ", dir.string());
    shard_of_name.emplace(shard, 0);
  }
  // Opened in file-name order so that files() is deterministic.
  for (auto& [shard, pos] : shard_of_name) {
    pos = shards.size();
    shards.push_back(SafetensorsFile::open((dir / shard).string()));
  }
  for (const auto& [tensor, shard] : weight_map) {
    PGKM_EXPECTS(shards[shard_of_name.at(shard)].find(tensor) != nullptr, index, "tensor '", tensor,
                 "' is mapped to shard '", shard, "' but that shard does not hold it");
  }
  for (const auto& [shard, pos] : shard_of_name) {
    for (const TensorInfo& t : shards[pos].tensors()) {
      auto it = weight_map.find(t.name);
      PGKM_EXPECTS(it != weight_map.end(), index, "tensor '", t.name, "' in shard '", shard,
                   "' is missing from weight_map");
      PGKM_EXPECTS(it->second == shard, index, "tensor '", t.name, "' is in shard '", shard,
                   "' and in shard '", it->second, "'");
    }
  }
  return shards;
}

}  // namespace

SafetensorsModel SafetensorsModel::open(const std::string& path) {
  std::vector<SafetensorsFile> shards;
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    const fs::path dir(path);
    if (fs::exists(dir / kIndexName, ec)) {
      std::string metadata;
      SafetensorsModel model(open_sharded(dir, metadata));
      model.indexed_ = true;
      model.index_metadata_json_ = std::move(metadata);
      return model;
    }
    PGKM_EXPECTS(fs::exists(dir / kSingleName, ec), path, "directory holds neither ", kIndexName,
                 " nor ", kSingleName);
    shards.push_back(SafetensorsFile::open((dir / kSingleName).string()));
  } else {
    shards.push_back(SafetensorsFile::open(path));
  }
  return SafetensorsModel(std::move(shards));
}

SafetensorsModel::SafetensorsModel(std::vector<SafetensorsFile> shards)
    : shards_(std::move(shards)) {
  for (const SafetensorsFile& s : shards_) {
    tensors_.insert(tensors_.end(), s.tensors().begin(), s.tensors().end());
  }
  std::sort(tensors_.begin(), tensors_.end(),
            [](const TensorInfo& a, const TensorInfo& b) { return a.name < b.name; });
  // open_sharded has matched every name to exactly one shard.
  PGKM_ASSERT(std::adjacent_find(tensors_.begin(), tensors_.end(),
                                 [](const auto& a, const auto& b) { return a.name == b.name; }) ==
              tensors_.end());
}

const TensorInfo* SafetensorsModel::find(const std::string& name) const {
  auto it = std::lower_bound(tensors_.begin(), tensors_.end(), name,
                             [](const TensorInfo& t, const std::string& n) { return t.name < n; });
  return it != tensors_.end() && it->name == name ? &*it : nullptr;
}

std::span<const std::byte> SafetensorsModel::bytes(const TensorInfo& t) const {
  for (const SafetensorsFile& s : shards_) {
    if (s.path() == t.file) return s.bytes(t);
  }
  throw InputError(t.file, str_cat("tensor '", t.name, "' is not from this model"));
}

std::vector<std::string> SafetensorsModel::files() const {
  std::vector<std::string> out;
  for (const SafetensorsFile& s : shards_)
    out.push_back(s.path());
  return out;
}

void write_safetensors(const std::string& path, const std::vector<OutTensor>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  std::vector<const OutTensor*> order;
  for (const OutTensor& t : tensors)
    order.push_back(&t);
  std::sort(order.begin(), order.end(),
            [](const OutTensor* a, const OutTensor* b) { return a->name < b->name; });
  Json header = Json::object();
  uint64_t offset = 0;
  for (size_t i = 0; i < order.size(); ++i) {
    const OutTensor& t = *order[i];
    PGKM_EXPECTS(!t.name.empty() && t.name != "__metadata__", path, "cannot write a tensor named '",
                 t.name, "'");
    PGKM_EXPECTS(i == 0 || order[i - 1]->name != t.name, path, "tensor '", t.name,
                 "' is given twice");
    const uint64_t nbytes = tensor_nbytes(path, t.name, t.dtype, t.shape);
    if (t.data.size() != nbytes)
      tensor_error(path, t.name,
                   str_cat("data holds ", t.data.size(), " bytes but shape ", shape_text(t.shape),
                           " of ", t.dtype, " needs ", nbytes));
    header[t.name] = {
        {"dtype", t.dtype}, {"shape", t.shape}, {"data_offsets", {offset, offset + nbytes}}};
    offset += nbytes;
  }
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::string text;
  try {
    text = header.dump();
  } catch (const Json::exception& e) {
    throw InputError(path, str_cat("tensor name or metadata is not valid UTF-8: ", e.what()));
  }
  // Padding to 8 bytes aligns the data section for readers that map it as typed arrays.
  text.append((8 - text.size() % 8) % 8, ' ');
  std::byte length[kLengthField];
  for (size_t i = 0; i < kLengthField; ++i)
    length[i] = std::byte((text.size() >> (8 * i)) & 0xff);

  AtomicFile out(path);
  out.write(length);
  out.write(text);
  for (const OutTensor* t : order)
    out.write(t->data);
  out.commit();
}

}  // namespace pgkm::io
