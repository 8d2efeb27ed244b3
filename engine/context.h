// Where a layer's k-means runs: the backend that scores and sums (kernels/backend.h) and
// the group of ranks that share the layer (engine/communicator.h). Passed by reference
// through the engine, so no function has a defaulted "maybe a communicator" pointer.
#pragma once

#include <optional>
#include <string_view>

#include "engine/communicator.h"
#include "kernels/backend.h"

namespace pgkm {

// How each reassignment finds the nearest centroids. Both give the same codes, bit for
// bit (kernels/backend.h assign_pruned); kPruned scores only the centroids that can win.
enum class SearchMode { kBrute, kPruned };
const char* search_mode_name(SearchMode m);  // "brute", "pruned"
std::optional<SearchMode> parse_search_mode(std::string_view name);

// The one-rank group, shared by every single-rank context (it holds no state).
Communicator& single_process_group();

struct EngineContext {
  // One rank: the layer is not shared. Implicit, so `run_kmeans(backend, ...)` reads as
  // what it is.
  EngineContext(Backend& backend_, SearchMode search_ = SearchMode::kPruned)
      : backend(backend_), group(single_process_group()), search(search_) {}
  EngineContext(Backend& backend_, Communicator& group_, SearchMode search_ = SearchMode::kPruned)
      : backend(backend_), group(group_), search(search_) {}

  Backend& backend;
  Communicator& group;
  SearchMode search;
};

}  // namespace pgkm
