// The processes of one pgkm job as the quantize command sees them: one process, or the
// ranks of an MPI job. Rank 0 writes the archive; other ranks stream their finished
// layers to it. Built without MPI, or started without mpirun/srun, the world is one rank.
#pragma once

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "engine/communicator.h"

namespace pgkm {

class World {
 public:
  virtual ~World() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual int local_rank() const = 0;  // rank among the ranks of this node
  // All ranks, for layers split over the whole job.
  virtual Communicator& everyone() = 0;
  // "rank 2 on node7" (or "" for a one-rank world), to prefix errors.
  virtual std::string where() const = 0;

  // Non-root ranks: hands a finished layer's message to rank 0 without waiting.
  virtual void send_to_root(std::vector<std::byte> message) = 0;
  // Rank 0: a message that has arrived, if any (never blocks).
  virtual std::optional<std::vector<std::byte>> poll_root() = 0;
  // Rank 0: the next message, waiting for it.
  virtual std::vector<std::byte> wait_root() = 0;
  // Non-root ranks: waits until every message sent has been delivered.
  virtual void flush_sends() = 0;

  // Ends every rank of the job at once (after an error on this one); never returns.
  [[noreturn]] virtual void abort(int code) = 0;
};

// The MPI world when built with MPI and started by a launcher (mpirun, srun), else one
// process.
std::unique_ptr<World> make_world(int* argc, char*** argv);

}  // namespace pgkm
