// A whole-model quantize run in a temporary directory of its own, for pipeline tests:
// the model file and config a test describes, and params for one CPU thread.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "io/safetensors.h"
#include "pipeline/params.h"

namespace pgkm {

class SmallRunTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("pgkm-run-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  // Writes model.safetensors and config.yaml and points params_ at them (out: out.h5,
  // 3 iterations, 1 thread, the CPU).
  void write_run(const std::vector<io::OutTensor>& tensors, const std::string& config) {
    io::write_safetensors(path("model.safetensors"), tensors, {});
    std::ofstream(path("config.yaml")) << config;
    params_.model = path("model.safetensors");
    params_.config = path("config.yaml");
    params_.out = path("out.h5");
    params_.defaults.kmeans.iterations = 3;
    params_.threads = 1;
    params_.device = Device::kCpu;
  }

  std::filesystem::path dir_;
  QuantizeParams params_;
};

}  // namespace pgkm
