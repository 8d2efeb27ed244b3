// Helpers shared by the archive tests (test_archive.cpp, test_archive_malformed.cpp): a
// header, a consistent random layer, a kept tensor, and a fixture with its own directory.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "engine/layer_record.h"
#include "io/archive.h"

namespace pgkm::io {

inline ArchiveHeader make_header() {
  ArchiveHeader h;
  h.tool_version = "0.1.0";
  h.config_text = "n_centroids:\n  Linear: {key: in_features, value: {'*': 256}}\n";
  h.config_format = "fairseq-yaml";
  h.algorithm = "pg";
  h.seed = 0xfedcba9876543210ull;
  h.iterations = 15;
  h.settings_json = R"({"device": "cpu"})";
  h.source_files_json = R"({"model.safetensors": "sha256:00ff"})";
  h.created_utc = "2024-05-01T12:00:00Z";
  return h;
}

// A consistent layer of `shape` with random centroids and codes.
inline LayerRecord make_layer(const std::string& name, std::vector<int64_t> shape, int b, int64_t k,
                              bool f16, uint32_t seed = 1) {
  std::mt19937 gen(seed);
  LayerRecord l;
  l.name = name;
  l.shape = std::move(shape);
  l.source_dtype = DType::BF16;
  l.module_type = ModuleType::kLinear;
  l.settings.block_size = b;
  l.settings.kmeans.n_centroids = k;
  l.settings.kmeans.algorithm = Algorithm::kIpq;
  l.settings.centroid_dtype = f16 ? CentroidDtype::kF16 : CentroidDtype::kF32;
  l.stats.iterations_run = 12;
  l.stats.empty_clusters = 3;
  l.stats.initial_empty = 5;
  l.stats.objective = 123.456;
  l.stats.resolution_rounds = 7;
  l.stats.seconds_total = 0.25;
  l.stats.distinct_vectors = 99;
  l.stats.clustered_points = 98;
  l.stats.stopped_early = true;
  l.stats.per_iteration = {IterationStats{0, 1.5, 2, 1, 3, 0.125, 0.25, 0.5}};
  l.source_digest = "src-" + name;
  l.settings_digest = "settings-1";
  std::normal_distribution<float> value(0.f, 0.1f);
  l.centroids.resize(static_cast<size_t>(k * b));
  for (float& c : l.centroids)
    c = value(gen);
  int64_t numel = 1;
  for (int64_t d : l.shape)
    numel *= d;
  std::uniform_int_distribution<uint32_t> code(0, static_cast<uint32_t>(k - 1));
  l.counts.assign(static_cast<size_t>(k), 0);
  for (int64_t j = 0; j < numel / b; ++j) {
    l.codes.push_back(j == 0 ? static_cast<uint32_t>(k - 1) : code(gen));
    ++l.counts[l.codes.back()];
  }
  return l;
}

template <typename T>
KeptTensor make_kept(const std::string& name, const std::string& dtype, std::vector<int64_t> shape,
                     const std::vector<T>& values) {
  KeptTensor t{name, dtype, std::move(shape), std::vector<uint8_t>(values.size() * sizeof(T))};
  if (!values.empty()) std::memcpy(t.bytes.data(), values.data(), t.bytes.size());
  return t;
}

class Archive : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = std::filesystem::temp_directory_path() /
           ("pgkm_archive_" + std::string(info->name()) + "_" + std::to_string(::getpid()));
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    path_ = (dir_ / "model.pgkm.h5").string();
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::filesystem::path dir_;
  std::string path_;
};

}  // namespace pgkm::io
