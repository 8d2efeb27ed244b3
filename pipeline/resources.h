// What a rank computes with: its worker threads and its backend (CPU or a GPU).
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "dist/world.h"
#include "kernels/backend.h"
#include "pipeline/params.h"

namespace pgkm {

// Worker threads for one rank. `requested` > 0 is taken as it is. Otherwise 0 ("leave
// OpenMP's default") for a rank alone on its node or when OMP_NUM_THREADS is set, else
// the node's cores shared out among the ranks on it (at least 1), so that ranks sharing
// a node do not oversubscribe its cores.
int threads_per_rank(int requested, int ranks_on_node, int node_cores, bool omp_threads_set);

// The backend `device` asks for. A rank takes the GPU of its rank within the node, so
// `mpirun -np 4` on a four-GPU node puts one rank on each GPU; CUDA devices are counted
// only when `device` is cuda or auto. Throws InputError when CUDA is asked for and this
// build or this node has none.
std::unique_ptr<Backend> make_backend(Device device, const World& world, int threads);

// How the layers shared by every rank add up their sums: one rank's view.
struct SharedLayerComm {
  bool nccl = false;   // NCCL on this rank's GPU; else the world's own communicator (MPI)
  std::string reason;  // why, for the log
};

// NCCL only where it can work and pays: more than one rank, a build with NCCL, the CUDA
// backend (`device` cuda, or auto with a GPU visible), and a GPU of its own for every rank
// of this node (ranks_on_node <= gpus). NCCL refuses two ranks on one GPU, so a node
// with more ranks than GPUs uses MPI. `gpus`: the CUDA devices this rank sees (0 when
// none or not asked, for --device cpu). A pure function; make_shared_layer_group makes
// the ranks agree.
SharedLayerComm choose_shared_layer_comm(Device device, int world_size, int ranks_on_node, int gpus,
                                         bool nccl_built);

// The communicator of the layers shared by every rank.
struct SharedLayerGroup {
  std::unique_ptr<Communicator> nccl;  // the NCCL communicator, or null for the world's
  Communicator* group = nullptr;       // nccl.get() or &world.everyone()
  std::string description;             // one line for the log: which, and why
};

// Collective over `world`: every rank calls choose_shared_layer_comm for itself, and
// NCCL is used only when every rank can (no rank may wait in NCCL for one that chose
// MPI). The NCCL communicator runs on the backend's GPU and bounds every wait by
// `timeout`. Throws SystemError if NCCL is chosen and fails to start.
SharedLayerGroup make_shared_layer_group(Device device, World& world, Backend& backend,
                                         std::chrono::milliseconds timeout);

}  // namespace pgkm
