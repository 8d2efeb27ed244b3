// Built when CMake found no CUDA toolkit: asking for the CUDA backend is a clear error
// (docs/CONVENTIONS.md #2), never a silent fallback.
#include "core/errors.h"
#include "kernels/backend.h"
#include "kernels/cuda/cuda_backend.h"

namespace pgkm {

namespace {
constexpr const char* kNotBuilt =
    "this pgkm was built without the CUDA backend (no CUDA toolkit found at configure time)";
}

CudaDeviceStatus cuda_device_status() {
  return {0, kNotBuilt};
}

bool cuda_backend_built() {
  return false;
}

int cuda_device_count() {
  return 0;
}

std::unique_ptr<Backend> make_cuda_backend(int) {
  throw SystemError(
      str_cat(kNotBuilt, "; use --device cpu or rebuild with the CUDA toolkit installed"));
}

}  // namespace pgkm
