#include "pipeline/resources.h"

#include <algorithm>
#include <string>

#include "core/errors.h"
#include "kernels/cuda/cuda_backend.h"

namespace pgkm {

int threads_per_rank(int requested, int ranks_on_node, int node_cores, bool omp_threads_set) {
  if (requested > 0) return requested;
  if (ranks_on_node > 1 && !omp_threads_set) return std::max(1, node_cores / ranks_on_node);
  return 0;
}

std::unique_ptr<Backend> make_backend(Device device, const World& world, int threads) {
  if (device == Device::kCpu) return make_cpu_backend({.threads = threads});
  const CudaDeviceStatus status = cuda_device_status();
  if (device == Device::kAuto && status.count == 0) return make_cpu_backend({.threads = threads});
  PGKM_EXPECTS(cuda_backend_built(), "--device cuda",
               "this pgkm was built without the CUDA backend");
  PGKM_EXPECTS(status.count > 0, "--device cuda", "no CUDA device is visible",
               world.size() > 1 ? " to " + world.where() : std::string(),
               status.error.empty() ? std::string() : " (" + status.error + ")");
  return make_cuda_backend(world.local_rank() % status.count);
}

}  // namespace pgkm
