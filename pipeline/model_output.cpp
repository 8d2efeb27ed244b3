#include "pipeline/model_output.h"

#include <cstring>
#include <set>

#include "core/digest.h"
#include "core/errors.h"
#include "engine/layout.h"
#include "io/mmap_file.h"

namespace pgkm {

OwnedTensor dequantized_tensor(const LayerRecord& l) {
  const BlockLayout layout = make_block_layout(l.name, l.shape, l.settings.block_size);
  std::vector<float> weight(static_cast<size_t>(element_count(l.shape)));
  reconstruct_weight(layout, l.centroids, l.codes, weight, l.column_scales);
  const DType dtype = l.source_dtype;
  OwnedTensor t{l.name, dtype_name(dtype), l.shape, {}, l.name};
  t.bytes.resize(weight.size() * dtype_size(dtype));
  for (size_t i = 0; i < weight.size(); ++i) {
    if (dtype == DType::F32) {
      std::memcpy(t.bytes.data() + 4 * i, &weight[i], 4);
    } else {
      const uint16_t h = dtype == DType::F16 ? float_to_f16(weight[i]) : float_to_bf16(weight[i]);
      std::memcpy(t.bytes.data() + 2 * i, &h, 2);
    }
  }
  return t;
}

OwnedTensor kept_tensor(io::KeptTensor k) {
  OwnedTensor t{k.name, k.dtype, k.shape, std::vector<std::byte>(k.bytes.size()), k.name};
  std::memcpy(t.bytes.data(), k.bytes.data(), k.bytes.size());
  return t;
}

io::SourceLayout archive_layout(const io::ArchiveReader& archive) {
  if (std::optional<io::SourceLayout> layout = archive.read_source_layout()) return *layout;
  io::SourceShard shard{"model.safetensors", {{"format", "pt"}}, {}};
  for (const std::string& name : archive.layer_names())
    shard.tensors.push_back(name);
  for (const std::string& name : archive.kept_names())
    shard.tensors.push_back(name);
  io::SourceLayout layout;
  layout.shards.push_back(std::move(shard));
  return layout;
}

std::map<std::string, std::string> pgkm_metadata(const std::string& archive_path,
                                                 const std::string& content) {
  const io::MappedFile map(archive_path);
  return {{"pgkm_archive_digest", digest_hex(digest64(map.bytes()))}, {"pgkm_content", content}};
}

io::ModelFolder layout_folder(const io::SourceLayout& layout,
                              const std::vector<OwnedTensor>& tensors,
                              const std::map<std::string, std::string>& extra,
                              std::vector<io::SourceFile> files, const std::string& context) {
  std::map<std::string, size_t> shard_of;  // source tensor -> shard
  for (size_t i = 0; i < layout.shards.size(); ++i) {
    for (const std::string& name : layout.shards[i].tensors)
      shard_of.emplace(name, i);
  }
  io::ModelFolder folder;
  for (const io::SourceShard& s : layout.shards) {
    io::FolderShard shard{s.file, s.metadata, {}};
    for (const auto& [key, value] : extra)
      shard.metadata[key] = value;
    folder.shards.push_back(std::move(shard));
  }
  for (const OwnedTensor& t : tensors) {
    const auto it = shard_of.find(t.source);
    PGKM_EXPECTS(it != shard_of.end(), context, "tensor '", t.source,
                 "' is in none of the source's safetensors files (source layout)");
    folder.shards[it->second].tensors.push_back(
        {t.name, t.dtype, t.shape, std::span<const std::byte>(t.bytes)});
  }
  if (layout.indexed) {
    folder.index_metadata =
        layout.index_metadata.is_object() ? layout.index_metadata : nlohmann::json::object();
  }
  folder.files = std::move(files);
  return folder;
}

std::map<std::string, std::string> merged_metadata(
    const io::SourceLayout& layout, const std::map<std::string, std::string>& extra) {
  std::map<std::string, std::string> out;
  for (const io::SourceShard& s : layout.shards) {
    for (const auto& [key, value] : s.metadata)
      out.emplace(key, value);
  }
  for (const auto& [key, value] : extra)
    out[key] = value;
  return out;
}

std::vector<io::OutTensor> out_tensors(const std::vector<OwnedTensor>& tensors) {
  std::vector<io::OutTensor> out;
  for (const OwnedTensor& t : tensors)
    out.push_back({t.name, t.dtype, t.shape, std::span<const std::byte>(t.bytes)});
  return out;
}

}  // namespace pgkm
