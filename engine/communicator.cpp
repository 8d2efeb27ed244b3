#include "engine/communicator.h"

#include <algorithm>

#include "core/errors.h"

namespace pgkm {

void SingleProcessCommunicator::allgather(std::span<const uint32_t> local,
                                          std::span<uint32_t> all) {
  PGKM_ASSERT(local.size() == all.size());
  std::copy(local.begin(), local.end(), all.begin());
}

}  // namespace pgkm
