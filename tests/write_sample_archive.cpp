// Writes a small sample archive for tests/archive_h5py_check.py (ctest fixture
// archive_sample): two layers (uint8 codes with float16 centroids, uint16 codes with
// float32 centroids, one name with '/' and '%') and kept tensors of several dtypes.
//
// Usage: write_sample_archive OUT.h5
#include <cstdint>
#include <cstring>
#include <exception>
#include <iostream>
#include <string>
#include <vector>

#include "io/archive.h"

namespace {

using pgkm::LayerRecord;
using pgkm::io::KeptTensor;

// A layer with deterministic centroids and codes; counts is the histogram of codes.
LayerRecord sample_layer(const std::string& name, std::vector<int64_t> shape, int b, int64_t k,
                         bool f16) {
  LayerRecord layer;
  layer.name = name;
  layer.shape = std::move(shape);
  layer.source_dtype = pgkm::DType::F32;
  layer.module_type =
      layer.shape.size() == 4 ? pgkm::ModuleType::kConv2d : pgkm::ModuleType::kLinear;
  layer.settings.block_size = b;
  layer.settings.kmeans.n_centroids = k;
  layer.settings.kmeans.algorithm = pgkm::Algorithm::kPg;
  layer.settings.centroid_dtype = f16 ? pgkm::CentroidDtype::kF16 : pgkm::CentroidDtype::kF32;
  layer.stats.iterations_run = 15;
  layer.stats.objective = 1.25;
  layer.stats.seconds_total = 0.5;
  layer.source_digest = "sha256:" + name;
  layer.settings_digest = "sha256:settings";
  int64_t numel = 1;
  for (int64_t d : layer.shape)
    numel *= d;
  layer.centroids.resize(static_cast<size_t>(k * b));
  for (size_t i = 0; i < layer.centroids.size(); ++i) {
    layer.centroids[i] = static_cast<float>(i % 97) * 0.125f - 6.f;
  }
  layer.counts.assign(static_cast<size_t>(k), 0);
  for (int64_t j = 0; j < numel / b; ++j) {
    const auto code = static_cast<uint32_t>((j * 7919) % k);
    layer.codes.push_back(code);
    ++layer.counts[code];
  }
  layer.stats.distinct_vectors = numel / b;
  layer.stats.clustered_points = numel / b;
  for (uint64_t c : layer.counts)
    layer.stats.empty_clusters += c == 0 ? 1 : 0;
  return layer;
}

template <typename T>
KeptTensor kept(const std::string& name, const std::string& dtype, std::vector<int64_t> shape,
                const std::vector<T>& values) {
  KeptTensor t{name, dtype, std::move(shape), std::vector<uint8_t>(values.size() * sizeof(T))};
  std::memcpy(t.bytes.data(), values.data(), t.bytes.size());
  return t;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: write_sample_archive OUT.h5\n";
    return 2;
  }
  try {
    pgkm::io::ArchiveHeader header;
    header.tool_version = "0.1.0";
    header.config_text = "n_centroids:\n  Linear:\n    key: in_features\n    value: {\"*\": 16}\n";
    header.config_format = "fairseq-yaml";
    header.algorithm = "pg";
    header.seed = 42;
    header.iterations = 15;
    header.settings_json = R"({"device": "cpu", "centroids_dtype": "f16"})";
    header.source_files_json = R"({"model.safetensors": "sha256:abc"})";
    pgkm::io::ArchiveWriter writer(argv[1], header);
    writer.write_layer(sample_layer("encoder.layers.0.fc1.weight", {16, 32}, 8, 16, true));
    writer.write_layer(sample_layer("decoder/odd%name.conv.weight", {64, 10, 2, 2}, 4, 300, false));
    writer.write_kept(
        kept<float>("encoder.layers.0.fc1.bias", "F32", {16}, std::vector<float>(16, 0.5f)));
    writer.write_kept(kept<int64_t>("num_batches_tracked", "I64", {}, {7}));
    writer.write_kept(kept<uint8_t>("attention.mask", "BOOL", {2, 3}, {1, 0, 1, 1, 0, 0}));
    writer.write_kept(kept<uint16_t>("norm.weight", "BF16", {4}, {0x3f80, 0x4000, 0xbf80, 0}));
    writer.write_kept(kept<uint16_t>("norm.bias", "F16", {2}, {0x3c00, 0xc000}));
    writer.finalize();
  } catch (const std::exception& e) {
    std::cerr << "write_sample_archive: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
