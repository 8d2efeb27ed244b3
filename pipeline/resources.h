// What a rank computes with: its worker threads and its backend (CPU or a GPU).
#pragma once

#include <memory>

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

}  // namespace pgkm
