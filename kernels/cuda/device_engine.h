// Internal to the CUDA backend: the split between its host half and its device half.
//
// CudaBackend's entry points are implemented once in cuda_backend_front.cpp (plain C++):
// they check every argument, keep track of what is resident, and only then call a
// DeviceEngine, which enqueues the CUDA work on its stream (device_engine.cu). The tests
// drive the front with a fake engine on machines without a GPU, to show that bad
// arguments throw before any CUDA call. No CUDA types here.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "kernels/backend.h"
#include "kernels/cuda/cuda_backend.h"

namespace pgkm::cuda {

// What DeviceEngine::download copies back in one synchronisation; empty spans are skipped.
struct EngineDownload {
  std::span<uint32_t> codes;   // [n] resident codes
  std::span<float> dist;       // [n] distances of the last assign with_dist
  std::span<int64_t> sums;     // [k, dim] resident sums
  std::span<uint64_t> counts;  // [k] resident counts
  std::span<float> centroids;  // [k, dim] resident centroids
  std::span<double> partials;  // [chunks] of the last objective_chunks
};

// The device half. Every call trusts its arguments (the front checked them) and, except
// upload and download, only enqueues work on the engine's stream.
class DeviceEngine {
 public:
  virtual ~DeviceEngine() = default;
  virtual std::string name() const = 0;
  virtual CudaStreamHandle stream() const = 0;
  // Whether `points` were made by this engine's upload.
  virtual bool owns(const ResidentPoints& points) const = 0;
  // Checked points [n, dim] and weights [n] to the device; synchronises.
  virtual std::unique_ptr<ResidentPoints> upload(std::span<const float> points,
                                                 std::span<const uint32_t> weights, int dim) = 0;
  // Centroids [k, dim]: resident, padded and their half norms computed.
  virtual void set_centroids(std::span<const float> centroids, int dim) = 0;
  // Codes [n] to the resident codes.
  virtual void set_codes(std::span<const uint32_t> codes) = 0;
  // Resident codes of `points` against the resident centroids (of the points' dim);
  // with_dist: also their distances; fp: also sums and counts over the k centroids.
  virtual void assign(const ResidentPoints& points, bool with_dist, const FixedPoint* fp) = 0;
  // Sums [k, dim] and counts [k] of `points` over the resident codes (all < k).
  virtual void accumulate(const ResidentPoints& points, int64_t k, const FixedPoint& fp) = 0;
  // Means of the resident sums into the resident centroids (same k and dim).
  virtual void update_means(const FixedPoint& fp) = 0;
  // Objective partials of `points` with the resident codes and centroids.
  virtual void objective_chunks(const ResidentPoints& points) = 0;
  // Copies back what `out` asks for; the only call that waits for the stream.
  virtual void download(const EngineDownload& out) = 0;
  virtual CudaResidentSums resident_sums(int64_t k, int dim) const = 0;
};

// The CUDA backend over `engine` (the real one, or a test's fake).
std::unique_ptr<CudaBackend> make_cuda_backend_on(std::unique_ptr<DeviceEngine> engine);

}  // namespace pgkm::cuda
