#include "pipeline/reconstruct.h"

#include <filesystem>
#include <vector>

#include "core/file_checks.h"
#include "io/archive.h"
#include "io/safetensors.h"
#include "pipeline/model_output.h"

namespace pgkm {

bool is_folder_output(const std::string& out) {
  return !out.ends_with(".safetensors");
}

ReconstructSummary reconstruct_model(const std::string& archive_path, const std::string& out) {
  check_output_clashes({{"--out", out}}, {{"the archive", archive_path}});
  const io::ArchiveReader archive = io::ArchiveReader::open(archive_path);
  ReconstructSummary summary;
  std::vector<OwnedTensor> tensors;
  for (const std::string& name : archive.layer_names()) {
    tensors.push_back(dequantized_tensor(archive.read_layer(name)));
    ++summary.layers;
  }
  for (const std::string& name : archive.kept_names()) {
    tensors.push_back(kept_tensor(archive.read_kept(name)));
    ++summary.kept;
  }
  const io::SourceLayout layout = archive_layout(archive);
  const auto extra = pgkm_metadata(archive_path, "dequantized");
  if (!is_folder_output(out)) {
    io::write_safetensors(out, out_tensors(tensors), merged_metadata(layout, extra));
    summary.shards = 1;
    summary.bytes = std::filesystem::file_size(out);
    return summary;
  }
  io::ModelFolder folder =
      layout_folder(layout, tensors, extra, archive.read_source_files(), archive_path);
  summary.folder = true;
  summary.shards = folder.shards.size();
  summary.files = folder.files.size();
  summary.bytes = io::write_model_folder(out, folder);
  return summary;
}

}  // namespace pgkm
