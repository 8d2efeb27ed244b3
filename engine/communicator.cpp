#include "engine/communicator.h"

#include <algorithm>

#include "core/enum_names.h"
#include "core/errors.h"
#include "engine/context.h"

namespace pgkm {

void Communicator::allreduce_sum_device(std::span<const DeviceIntegers> buffers,
                                        DeviceStream stream) {
  PGKM_ASSERT(false, "allreduce_sum_device of ", buffers.size(), " buffers on device ",
              stream.device, ": this communicator reduces host memory only");
}

void SingleProcessCommunicator::allgather(std::span<const uint32_t> local,
                                          std::span<uint32_t> all) {
  PGKM_ASSERT(local.size() == all.size());
  std::copy(local.begin(), local.end(), all.begin());
}

namespace {
constexpr EnumNames<SearchMode, 2> kSearchModeNames{
    {{{SearchMode::kBrute, "brute"}, {SearchMode::kPruned, "pruned"}}}};
}  // namespace

const char* search_mode_name(SearchMode m) {
  return kSearchModeNames.name(m);
}

std::optional<SearchMode> parse_search_mode(std::string_view name) {
  return kSearchModeNames.parse(name);
}

Communicator& single_process_group() {
  static SingleProcessCommunicator alone;
  return alone;
}

}  // namespace pgkm
