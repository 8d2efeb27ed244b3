// `pgkm inspect` and `pgkm reconstruct`: reading an archive back.
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "core/errors.h"
#include "engine/layout.h"
#include "engine/size_plan.h"
#include "io/archive.h"
#include "io/safetensors.h"
#include "launch/commands.h"
#include "launch/format.h"

namespace pgkm {
namespace {

int64_t numel_of(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape)
    n *= d;
  return n;
}

DType parse_source_dtype(const std::string& archive, const io::ArchiveLayer& l) {
  for (DType t : {DType::F32, DType::F16, DType::BF16}) {
    if (l.source_dtype == dtype_name(t)) return t;
  }
  throw InputError(archive, str_cat("layer '", l.name, "': source_dtype '", l.source_dtype,
                                    "' is not F32, F16 or BF16"));
}

// The dequantized weight in the layer's source dtype, little-endian bytes.
std::vector<std::byte> dequantize(const std::string& archive, const io::ArchiveLayer& l) {
  const BlockLayout layout = make_block_layout(l.name, l.shape, static_cast<int>(l.block_size));
  std::vector<float> weight(static_cast<size_t>(numel_of(l.shape)));
  reconstruct_weight(layout, l.centroids, l.codes, weight);
  const DType dtype = parse_source_dtype(archive, l);
  std::vector<std::byte> bytes(weight.size() * dtype_size(dtype));
  for (size_t i = 0; i < weight.size(); ++i) {
    if (dtype == DType::F32) {
      std::memcpy(bytes.data() + 4 * i, &weight[i], 4);
    } else {
      const uint16_t h = dtype == DType::F16 ? float_to_f16(weight[i]) : float_to_bf16(weight[i]);
      std::memcpy(bytes.data() + 2 * i, &h, 2);
    }
  }
  return bytes;
}

}  // namespace

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
    const io::ArchiveLayer l = archive.read_layer(name);
    const int64_t numel = numel_of(l.shape);
    const double before = original_bytes(numel) / kBytesPerMiB;
    const double after =
        quantized_bytes(numel, static_cast<int>(l.block_size), l.n_centroids) / kBytesPerMiB;
    original += before;
    compressed += after;
    std::printf("%-56s %-14s %-5s %3lld %6lld %-8s %6lld %12.5g %8.2f %10.3f %10.3f\n",
                l.name.c_str(), shape_text(l.shape).c_str(), l.source_dtype.c_str(),
                static_cast<long long>(l.block_size), static_cast<long long>(l.n_centroids),
                l.algorithm.c_str(), static_cast<long long>(l.empty_clusters), l.objective,
                l.seconds, before, after);
  }
  size_t kept_params = 0;
  const auto kept = archive.kept_names();
  for (const std::string& name : kept) {
    const io::KeptTensor t = archive.read_kept(name);
    if (counts_as_parameter(t.dtype)) kept_params += static_cast<size_t>(numel_of(t.shape));
  }
  original += original_bytes(static_cast<int64_t>(kept_params)) / kBytesPerMiB;
  compressed += original_bytes(static_cast<int64_t>(kept_params)) / kBytesPerMiB;
  std::printf("total: %zu layers quantized, %zu tensors kept; %s MiB -> %s MiB, ratio %s\n",
              names.size(), kept.size(), fixed(original, 2).c_str(), fixed(compressed, 2).c_str(),
              fixed(compressed > 0 ? original / compressed : 0, 2).c_str());
}

void run_reconstruct(const std::string& path, const std::string& out) {
  const io::ArchiveReader archive = io::ArchiveReader::open(path);
  std::vector<io::ArchiveLayer> layers;
  std::vector<std::vector<std::byte>> weights;
  for (const std::string& name : archive.layer_names()) {
    layers.push_back(archive.read_layer(name));
    weights.push_back(dequantize(path, layers.back()));
  }
  std::vector<io::KeptTensor> kept;
  for (const std::string& name : archive.kept_names())
    kept.push_back(archive.read_kept(name));
  std::vector<io::OutTensor> tensors;
  for (size_t i = 0; i < layers.size(); ++i) {
    tensors.push_back({layers[i].name, layers[i].source_dtype, layers[i].shape, weights[i]});
  }
  for (const io::KeptTensor& t : kept) {
    tensors.push_back({t.name, t.dtype, t.shape, std::as_bytes(std::span(t.bytes))});
  }
  io::write_safetensors(out, tensors, {{"format", "pt"}, {"pgkm_archive", path}});
  std::printf("%s: %zu dequantized layers and %zu kept tensors written\n", out.c_str(),
              layers.size(), kept.size());
}

}  // namespace pgkm
