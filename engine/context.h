// Where a layer's k-means runs: the backend that scores and sums (kernels/backend.h) and
// the group of ranks that share the layer (engine/communicator.h). Passed by reference
// through the engine, so no function has a defaulted "maybe a communicator" pointer.
#pragma once

#include "engine/communicator.h"
#include "kernels/backend.h"

namespace pgkm {

// The one-rank group, shared by every single-rank context (it holds no state).
Communicator& single_process_group();

struct EngineContext {
  // One rank: the layer is not shared. Implicit, so `run_kmeans(backend, ...)` reads as
  // what it is.
  EngineContext(Backend& backend_) : backend(backend_), group(single_process_group()) {}
  EngineContext(Backend& backend_, Communicator& group_) : backend(backend_), group(group_) {}

  Backend& backend;
  Communicator& group;
};

}  // namespace pgkm
