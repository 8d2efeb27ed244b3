// Built when CMake found no CUDA toolkit: asking for the CUDA backend is a clear error
// (docs/CONVENTIONS.md #2), never a silent fallback.
#include "core/errors.h"
#include "kernels/backend.h"

namespace pgkm {

bool cuda_backend_built() {
  return false;
}
int cuda_device_count() {
  return 0;
}

std::unique_ptr<Backend> make_cuda_backend(int) {
  throw SystemError(
      "this pgkm was built without the CUDA backend (no CUDA toolkit found at configure "
      "time); use --device cpu or rebuild with the CUDA toolkit installed");
}

}  // namespace pgkm
