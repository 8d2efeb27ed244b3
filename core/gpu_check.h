// Checked CUDA and NCCL calls (docs/CONVENTIONS.md #6): a failed call throws SystemError with
// the call's text and the library's message. Include only from translation units built
// against CUDA (kernels/cuda, dist/nccl_communicator.cpp); the NCCL half exists where
// <nccl.h> was included first.
#pragma once

#include <cuda_runtime.h>

#include "core/errors.h"

namespace pgkm {

inline void throw_if_cuda_error(cudaError_t status, const char* call) {
  if (status == cudaSuccess) return;
  throw SystemError(str_cat(call, " failed: ", cudaGetErrorString(status), " (CUDA error ",
                            static_cast<int>(status), ")"));
}

#ifdef NCCL_H_
inline void throw_if_nccl_error(ncclResult_t status, const char* call) {
  if (status == ncclSuccess) return;
  throw SystemError(str_cat(call, " failed: ", ncclGetErrorString(status), " (NCCL error ",
                            static_cast<int>(status), ")"));
}
#endif

}  // namespace pgkm

// Evaluates a CUDA runtime call; throws SystemError naming it when it fails.
#define PGKM_CUDA_TRY(call) ::pgkm::throw_if_cuda_error((call), #call)
#ifdef NCCL_H_
// Evaluates an NCCL call; throws SystemError naming it when it fails.
#define PGKM_NCCL_TRY(call) ::pgkm::throw_if_nccl_error((call), #call)
#endif
