// The processes of one pgkm job: one process, or the ranks of an MPI job. Rank 0 writes
// the archive; other ranks stream their finished layers to it through the job's layer
// channel (dist/layer_channel.h). Built without MPI, or started without mpirun/srun, the
// world is one rank.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "dist/layer_channel.h"
#include "engine/communicator.h"

namespace pgkm {

class World {
 public:
  virtual ~World() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual int local_rank() const = 0;          // rank among the ranks of this node
  virtual int ranks_on_this_node() const = 0;  // how many ranks share this node
  // All ranks, for layers split over the whole job.
  virtual Communicator& everyone() = 0;
  // Finished layers on their way to rank 0.
  virtual LayerChannel& layers() = 0;
  // "rank 2 on node7" (or "" for a one-rank world), to prefix errors.
  virtual std::string where() const = 0;
  // The most one wait for the other ranks (a collective) may take before it fails
  // (--comm-timeout); nothing to wait for in a one-process world.
  virtual void set_comm_timeout(std::chrono::milliseconds) {}
  // Ends every rank of the job at once (after an error on this one); never returns.
  [[noreturn]] virtual void abort(int code) = 0;
};

// The MPI world when built with MPI and started by a launcher (mpirun, srun), else one
// process.
std::unique_ptr<World> make_world(int* argc, char*** argv);

// A world of one process (tests, library callers that run no MPI job).
std::unique_ptr<World> make_single_process_world();

}  // namespace pgkm
