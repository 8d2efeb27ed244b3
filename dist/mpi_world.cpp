// The MPI world: one MpiSession, a communicator over every rank, and the layer channel to
// rank 0 over MPI point-to-point messages.
#include <vector>

#include "core/errors.h"
#include "dist/mpi_communicator.h"
#include "dist/orphan_watchdog.h"
#include "dist/world.h"

namespace pgkm {
namespace {

// Every layer message travels with this tag on the world's own duplicate communicator.
constexpr int kLayerTag = 7301;

class MpiLayerChannel final : public LayerChannel {
 public:
  explicit MpiLayerChannel(MpiCommunicator& comm) : comm_(comm) {}

  void flush() override {
    for (auto& s : pending_)
      s.wait();
    pending_.clear();
  }

 protected:
  void send_bytes(std::vector<std::byte> message) override {
    pending_.push_back(comm_.send_bytes(0, kLayerTag, std::move(message)));
    // Forget sends that have completed so their buffers are freed as we go.
    std::erase_if(pending_, [](MpiCommunicator::PendingSend& s) { return s.done(); });
  }
  std::optional<std::vector<std::byte>> poll_bytes() override {
    const std::optional<int> source = comm_.probe_source(kLayerTag);
    if (!source) return std::nullopt;
    return comm_.recv_bytes(*source, kLayerTag);
  }
  std::vector<std::byte> wait_bytes() override {
    const std::optional<int> source = comm_.wait_any_source(kLayerTag);
    PGKM_ASSERT(source.has_value());
    return comm_.recv_bytes(*source, kLayerTag);
  }

 private:
  MpiCommunicator& comm_;
  std::vector<MpiCommunicator::PendingSend> pending_;
};

class MpiWorld final : public World {
 public:
  MpiWorld(int* argc, char*** argv)
      : session_(argc, argv), everyone_(MPI_COMM_WORLD), channel_(everyone_) {
    // A rank whose daemon is gone (its host cut off, the daemon killed) ends itself.
    if (size() > 1) start_orphan_watchdog(where());
  }
  int rank() const override { return session_.world_rank(); }
  int size() const override { return session_.world_size(); }
  int local_rank() const override { return session_.local_rank(); }
  int ranks_on_this_node() const override { return session_.local_size(); }
  Communicator& everyone() override { return everyone_; }
  LayerChannel& layers() override { return channel_; }
  std::string where() const override {
    return "rank " + std::to_string(rank()) + " on " + session_.hostname();
  }
  void set_comm_timeout(std::chrono::milliseconds timeout) override {
    everyone_.set_timeout(timeout);
  }
  [[noreturn]] void abort(int code) override { MpiSession::abort(code); }

 private:
  MpiSession session_;
  MpiCommunicator everyone_;
  MpiLayerChannel channel_;
};

}  // namespace

std::unique_ptr<World> make_mpi_world(int* argc, char*** argv) {
  return std::make_unique<MpiWorld>(argc, argv);
}

}  // namespace pgkm
