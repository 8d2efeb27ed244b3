#include "engine/communicator.h"

#include <algorithm>

#include "core/errors.h"
#include "engine/context.h"

namespace pgkm {

void SingleProcessCommunicator::allgather(std::span<const uint32_t> local,
                                          std::span<uint32_t> all) {
  PGKM_ASSERT(local.size() == all.size());
  std::copy(local.begin(), local.end(), all.begin());
}

Communicator& single_process_group() {
  static SingleProcessCommunicator alone;
  return alone;
}

}  // namespace pgkm
