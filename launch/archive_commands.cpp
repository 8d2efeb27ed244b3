// `pgkm inspect`, `pgkm reconstruct` and `pgkm export`: reading an archive back.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "core/errors.h"
#include "core/text.h"
#include "engine/layout.h"
#include "engine/size_plan.h"
#include "io/archive.h"
#include "io/hdf5_util.h"
#include "io/safetensors.h"
#include "launch/commands.h"
#include "launch/format.h"
#include "pipeline/export_model.h"
#include "pipeline/reconstruct.h"

namespace pgkm {
void set_verbose(bool on) {
  io::print_hdf5_error_stacks(on);
}

void run_inspect(const std::string& path) {
  const io::ArchiveReader archive = io::ArchiveReader::open(path);
  const auto names = archive.layer_names();
  std::printf("%s: pgkm archive v%lld, tool %s, algorithm %s, seed %llu, config %s\n", path.c_str(),
              static_cast<long long>(archive.format_version()),
              archive.header().tool_version.c_str(), archive.header().algorithm.c_str(),
              static_cast<unsigned long long>(archive.header().seed),
              archive.header().config_format.c_str());
  std::printf("%-56s %-14s %-5s %3s %6s %-8s %6s %12s %8s  %s\n", "layer", "shape", "dtype", "b",
              "K", "algo", "empty", "objective", "seconds",
              "source -> archive MiB (SizeTracker original -> compressed)");
  io::ReportTotals totals;
  for (const std::string& name : names) {
    const LayerRecord l = archive.read_layer(name);
    SizeFigures sizes = quantized_layer_sizes(
        element_count(l.shape), dtype_size(l.source_dtype), l.settings.block_size,
        l.settings.kmeans.n_centroids, l.settings.centroid_dtype == CentroidDtype::kF16 ? 2 : 4);
    sizes += column_scale_sizes(l.column_scales.size());
    totals.sizes += sizes;
    std::printf("%-56s %-14s %-5s %3lld %6lld %-8s %6lld %12.5g %8.2f  %s\n", l.name.c_str(),
                shape_text(l.shape).c_str(), dtype_name(l.source_dtype),
                static_cast<long long>(l.settings.block_size),
                static_cast<long long>(l.settings.kmeans.n_centroids),
                algorithm_name(l.settings.kmeans.algorithm),
                static_cast<long long>(l.stats.empty_clusters), l.stats.objective,
                l.stats.seconds_total, sizes_text(sizes, 3).c_str());
    if (l.importance_weighted()) {
      float lo = l.column_scales[0], hi = lo;
      for (float v : l.column_scales) {
        lo = std::min(lo, v);
        hi = std::max(hi, v);
      }
      std::printf("%-56s importance-weighted: %zu column scales in [%.4g, %.4g]\n", "",
                  l.column_scales.size(), lo, hi);
    }
  }
  const auto kept = archive.kept_names();
  for (const std::string& name : kept) {
    const io::KeptTensor t = archive.read_kept(name);
    totals.sizes +=
        kept_tensor_sizes(element_count(t.shape), t.bytes.size(), counts_as_parameter(t.dtype));
  }
  uint64_t file_bytes = 0;
  const std::vector<io::SourceFile> files = archive.read_source_files();
  for (const io::SourceFile& f : files)
    file_bytes += f.bytes.size();
  totals.sizes.source_bytes += file_bytes;
  totals.sizes.archive_bytes += file_bytes;
  totals.archive_file_bytes = std::filesystem::file_size(path);
  std::printf("total: %zu layers quantized, %zu tensors kept, %zu source files (%s MiB); %s\n",
              names.size(), kept.size(), files.size(),
              mib(static_cast<double>(file_bytes), 2).c_str(), totals_text(totals).c_str());
}

void run_verify(const std::string& path) {
  const io::ArchiveReader archive = io::ArchiveReader::open(path);
  const io::ArchiveVerification v = archive.verify();
  for (const io::ArchiveDamage& d : v.damaged)
    std::printf("damaged: %s: %s\n", d.object.c_str(), d.message.c_str());
  if (!v.damaged.empty()) {
    throw InputError(
        path, str_cat(v.damaged.size(), " of ", v.objects, " objects damaged (listed above)"));
  }
  std::printf("%s: verified %zu objects\n", path.c_str(), v.objects);
}

void run_reconstruct(const std::string& path, const std::string& out) {
  const ReconstructSummary s = reconstruct_model(path, out);
  if (s.folder) {
    std::printf(
        "%s: model folder, %zu dequantized layers and %zu kept tensors in %zu safetensors "
        "file%s, %zu other files; %s MiB\n",
        out.c_str(), s.layers, s.kept, s.shards, s.shards == 1 ? "" : "s", s.files,
        mib(static_cast<double>(s.bytes), 2).c_str());
  } else {
    std::printf("%s: %zu dequantized layers and %zu kept tensors written; %s MiB\n", out.c_str(),
                s.layers, s.kept, mib(static_cast<double>(s.bytes), 2).c_str());
  }
}

void run_export(const std::string& path, ExportFormat format, const std::string& out) {
  const ExportSummary s = export_model(path, format, out);
  std::printf(
      "%s: %s model folder, %zu Linear layers as codes (b=%d, K=%lld, %d-bit codebook), %zu "
      "quantized layers dense, %zu tensors kept, %zu other files; %s MiB on disk\n",
      out.c_str(), export_format_name(format), s.quantized_linears, s.block_size,
      static_cast<long long>(s.n_centroids), s.nbits, s.dense_layers, s.kept, s.files,
      mib(static_cast<double>(s.bytes), 2).c_str());
}

}  // namespace pgkm
