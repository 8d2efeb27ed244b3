// `pgkm inspect` and `pgkm reconstruct`: reading an archive back.
#include <cstdio>
#include <string>
#include <vector>

#include "core/text.h"
#include "engine/layout.h"
#include "engine/size_plan.h"
#include "io/archive.h"
#include "launch/commands.h"
#include "pipeline/reconstruct.h"

namespace pgkm {
void run_inspect(const std::string& path) {
  const io::ArchiveReader archive = io::ArchiveReader::open(path);
  const auto names = archive.layer_names();
  std::printf("%s: pgkm archive v%lld, tool %s, algorithm %s, seed %llu, config %s\n", path.c_str(),
              static_cast<long long>(archive.format_version()),
              archive.header().tool_version.c_str(), archive.header().algorithm.c_str(),
              static_cast<unsigned long long>(archive.header().seed),
              archive.header().config_format.c_str());
  std::printf("%-56s %-14s %-5s %3s %6s %-8s %6s %12s %8s %10s %10s\n", "layer", "shape", "dtype",
              "b", "K", "algo", "empty", "objective", "seconds", "orig MiB", "pq MiB");
  double original = 0, compressed = 0;
  for (const std::string& name : names) {
    const LayerRecord l = archive.read_layer(name);
    const int64_t numel = element_count(l.shape);
    const int b = l.settings.block_size;
    const int64_t k = l.settings.kmeans.n_centroids;
    const double before = original_bytes(numel) / kBytesPerMiB;
    const double after = quantized_bytes(numel, b, k) / kBytesPerMiB;
    original += before;
    compressed += after;
    std::printf("%-56s %-14s %-5s %3lld %6lld %-8s %6lld %12.5g %8.2f %10.3f %10.3f\n",
                l.name.c_str(), shape_text(l.shape).c_str(), dtype_name(l.source_dtype),
                static_cast<long long>(b), static_cast<long long>(k),
                algorithm_name(l.settings.kmeans.algorithm),
                static_cast<long long>(l.stats.empty_clusters), l.stats.objective,
                l.stats.seconds_total, before, after);
  }
  size_t kept_params = 0;
  const auto kept = archive.kept_names();
  for (const std::string& name : kept) {
    const io::KeptTensor t = archive.read_kept(name);
    if (counts_as_parameter(t.dtype)) kept_params += static_cast<size_t>(element_count(t.shape));
  }
  original += original_bytes(static_cast<int64_t>(kept_params)) / kBytesPerMiB;
  compressed += original_bytes(static_cast<int64_t>(kept_params)) / kBytesPerMiB;
  std::printf("total: %zu layers quantized, %zu tensors kept; %s MiB -> %s MiB, ratio %s\n",
              names.size(), kept.size(), fixed(original, 2).c_str(), fixed(compressed, 2).c_str(),
              fixed(compressed > 0 ? original / compressed : 0, 2).c_str());
}

void run_reconstruct(const std::string& path, const std::string& out) {
  const ReconstructSummary s = reconstruct_model(path, out);
  std::printf("%s: %zu dequantized layers and %zu kept tensors written\n", out.c_str(), s.layers,
              s.kept);
}

}  // namespace pgkm
