// The CUDA backend's own interface, beyond kernels/backend.h: the device query with the
// CUDA error text, and device-resident k-means passes (centroids, codes, sums and counts
// stay on the GPU between calls, so a driver moves only what it reads). No CUDA types:
// engine/ and launch/ may include this header in builds without CUDA, where
// make_cuda_backend() throws and cuda_device_status() reports no device.
//
// make_cuda_backend() (kernels/backend.h) returns a CudaBackend; reach these calls with
// dynamic_cast<CudaBackend*>. One backend serves one thread at a time.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "kernels/backend.h"

namespace pgkm {

// What the CUDA runtime says about the devices. Never throws.
struct CudaDeviceStatus {
  int count = 0;      // devices visible; 0 when there are none or the query failed
  std::string error;  // "" when the query succeeded, else the CUDA error text (driver too old, ...)
};
CudaDeviceStatus cuda_device_status();

// The stream on which a CudaBackend orders all of its work, for a communicator that
// reduces the resident sums in place (ncclAllReduce on this stream).
struct CudaStreamHandle {
  void* stream = nullptr;  // a cudaStream_t
  int device = -1;         // the CUDA device ordinal it belongs to
};

// Device addresses of the resident sums and counts, valid until the next call that
// accumulates with a different k.
struct CudaResidentSums {
  void* sums = nullptr;    // [k, dim] int64 fixed-point sums, device memory
  void* counts = nullptr;  // [k] uint64 total weights, device memory
  int64_t k = 0;
  int dim = 0;
};

// Where CudaBackend::download copies resident results; an empty span is skipped.
struct CudaDownload {
  std::span<uint32_t> codes;   // [n] codes of the last assign_resident / accumulate points
  std::span<int64_t> sums;     // [k, dim] of the last accumulation
  std::span<uint64_t> counts;  // [k] of the last accumulation
  std::span<float> centroids;  // [k, dim] the resident centroids
};

// Objective partial sums cover chunks of this many points, in point order.
inline constexpr int64_t kObjectiveChunk = 4096;

class CudaBackend : public Backend {
 public:
  // The backend's stream (not the legacy default stream) and its device.
  virtual CudaStreamHandle stream() const = 0;

  // Makes centroids [k, dim] row-major resident (k = centroids.size() / dim).
  virtual void set_centroids(std::span<const float> centroids, int dim) = 0;

  // Codes of `points` against the resident centroids, kept on the device; with fp, also
  // the resident sums and counts over them (as Backend::accumulate). Asynchronous.
  virtual void assign_resident(const ResidentPoints& points, const FixedPoint* fp) = 0;

  // Every resident centroid whose count is not 0 becomes fp.mean(sum, count), bit for
  // bit ClusterState::update_means (engine/kmeans.cpp). Asynchronous.
  virtual void update_means(const FixedPoint& fp) = 0;

  // Per chunk c of kObjectiveChunk points of `points` (the points of the resident codes),
  // sum over its points in order of weight * |x - centroid(code)|^2 in double, the
  // terms computed as engine/kmeans.cpp objective_of does: partials
  // [ceil(n / kObjectiveChunk)]. Their sum in chunk order is objective_of's result when
  // `points` are all of its points (or a slice starting at a multiple of the chunk).
  virtual void objective_chunks(const ResidentPoints& points, std::span<double> partials) = 0;

  // Copies the requested resident results back; one synchronisation.
  virtual void download(const CudaDownload& out) = 0;

  // Device addresses of the resident sums and counts (after an accumulation).
  virtual CudaResidentSums resident_sums() const = 0;
};

}  // namespace pgkm
