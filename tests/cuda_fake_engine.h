// A stand-in for the CUDA backend's device half (kernels/cuda/device_engine.h): it
// records which engine calls the backend makes and touches no device, so the tests show
// on any machine that every bad argument is refused before the first CUDA call.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "kernels/cuda/device_engine.h"

namespace pgkm::testing_cuda {

class FakePoints final : public ResidentPoints {
 public:
  FakePoints(int64_t n, int dim) : n_(n), dim_(dim) {}
  int64_t size() const override { return n_; }
  int dim() const override { return dim_; }

 private:
  int64_t n_;
  int dim_;
};

// Addresses the fake hands out: never dereferenced, only compared by tests that check
// they reach a communicator unchanged.
inline void* const kFakeStream = reinterpret_cast<void*>(uintptr_t{0x5100});
inline void* const kFakeSums = reinterpret_cast<void*>(uintptr_t{0x5200});
inline void* const kFakeCounts = reinterpret_cast<void*>(uintptr_t{0x5300});

class FakeEngine final : public cuda::DeviceEngine {
 public:
  // `log` receives one entry per call; it outlives the engine.
  explicit FakeEngine(std::vector<std::string>& log) : log_(log) {}

  std::string name() const override { return "fake"; }
  CudaStreamHandle stream() const override { return {kFakeStream, 0}; }
  bool owns(const ResidentPoints& points) const override {
    return dynamic_cast<const FakePoints*>(&points) != nullptr;
  }
  std::unique_ptr<ResidentPoints> upload(std::span<const float>, std::span<const uint32_t> weights,
                                         int dim) override {
    log_.push_back("upload");
    return std::make_unique<FakePoints>(static_cast<int64_t>(weights.size()), dim);
  }
  void set_centroids(std::span<const float>, int) override { log_.push_back("set_centroids"); }
  void set_codes(std::span<const uint32_t>) override { log_.push_back("set_codes"); }
  void assign(const ResidentPoints&, bool with_dist, const FixedPoint* fp) override {
    log_.push_back(std::string("assign") + (with_dist ? "+dist" : "") + (fp ? "+sums" : ""));
  }
  void accumulate(const ResidentPoints&, int64_t, const FixedPoint&) override {
    log_.push_back("accumulate");
  }
  void update_means(const FixedPoint&) override { log_.push_back("update_means"); }
  void objective_chunks(const ResidentPoints&) override { log_.push_back("objective_chunks"); }
  void download(const cuda::EngineDownload&) override { log_.push_back("download"); }
  CudaResidentSums resident_sums(int64_t k, int dim) const override {
    return {kFakeSums, kFakeCounts, k, dim};
  }

 private:
  std::vector<std::string>& log_;
};

}  // namespace pgkm::testing_cuda
