// The NCCL communicator where this build has it (docs/CONVENTIONS.md #2: compile time
// decides what exists, run time what is used). The pipeline asks here, so that it needs
// neither NCCL's headers nor an #ifdef.
#pragma once

#include <chrono>
#include <memory>

#include "engine/communicator.h"

namespace pgkm {

// Whether this build has the NCCL communicator (CUDA, MPI and NCCL were all found).
bool nccl_built();

// An NcclCommunicator (dist/nccl_communicator.h) over the ranks of `bootstrap`, on CUDA
// device `device`, every wait bounded by `timeout`. Collective over `bootstrap`. Throws
// SystemError when this build has no NCCL, or as NcclCommunicator's constructor does.
std::unique_ptr<Communicator> make_nccl_communicator(Communicator& bootstrap, int device,
                                                     std::chrono::milliseconds timeout);

}  // namespace pgkm
