#include "dist/nccl_factory.h"

#include "core/errors.h"
#ifdef PGKM_HAVE_NCCL
#include "dist/nccl_communicator.h"
#endif

namespace pgkm {

bool nccl_built() {
#ifdef PGKM_HAVE_NCCL
  return true;
#else
  return false;
#endif
}

std::unique_ptr<Communicator> make_nccl_communicator(
    [[maybe_unused]] Communicator& bootstrap, [[maybe_unused]] int device,
    [[maybe_unused]] std::chrono::milliseconds timeout) {
#ifdef PGKM_HAVE_NCCL
  return std::make_unique<NcclCommunicator>(bootstrap, device, timeout);
#else
  throw SystemError(str_cat("an NCCL communicator on CUDA device ", device,
                            " was requested, but this pgkm was built without NCCL"));
#endif
}

}  // namespace pgkm
