#include "pipeline/resources.h"

#include <algorithm>
#include <array>
#include <span>
#include <string>

#include "core/errors.h"
#include "dist/nccl_factory.h"
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

SharedLayerComm choose_shared_layer_comm(Device device, int world_size, int ranks_on_node, int gpus,
                                         bool nccl_built) {
  if (world_size <= 1) return {false, "one rank: no layer is shared"};
  if (device == Device::kCpu) return {false, "MPI: --device cpu"};
  if (gpus == 0) return {false, "MPI: no CUDA device visible, the CPU backend runs"};
  if (!nccl_built) return {false, "MPI: this pgkm was built without NCCL"};
  if (ranks_on_node > gpus) {
    return {false, str_cat("MPI: ", ranks_on_node, " ranks share this node's ", gpus,
                           " GPU(s), and NCCL needs a GPU per rank")};
  }
  return {true, str_cat("NCCL: ", ranks_on_node,
                        " rank(s) on this node, each on a GPU of its own (", gpus, " visible)")};
}

SharedLayerGroup make_shared_layer_group(Device device, World& world, Backend& backend,
                                         std::chrono::milliseconds timeout) {
  SharedLayerGroup result;
  result.group = &world.everyone();
  const auto* cuda = dynamic_cast<const CudaBackend*>(&backend);
  // Devices are counted only where CUDA may run (--device cpu never touches the driver).
  const int gpus = device == Device::kCpu || cuda == nullptr ? 0 : cuda_device_status().count;
  SharedLayerComm mine = choose_shared_layer_comm(device, world.size(), world.ranks_on_this_node(),
                                                  gpus, nccl_built());
  if (world.size() > 1) {
    std::array<int64_t, 1> refusing{mine.nccl ? 0 : 1};
    world.everyone().allreduce_sum(std::span<int64_t>(refusing));
    if (mine.nccl && refusing[0] > 0) {
      mine = {false, str_cat("MPI: ", refusing[0], " of ", world.size(),
                             " ranks cannot use NCCL (each needs the CUDA backend and a GPU "
                             "of its own)")};
    }
  }
  result.description = str_cat("layers shared by every rank reduce with ", mine.reason);
  if (mine.nccl) {
    result.nccl = make_nccl_communicator(world.everyone(), cuda->stream().device, timeout);
    result.group = result.nccl.get();
  }
  return result;
}

}  // namespace pgkm
