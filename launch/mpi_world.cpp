// The MPI world: one MpiSession, a communicator over every rank, and the stream of
// finished layers from the other ranks to rank 0.
#include <vector>

#include "core/errors.h"
#include "launch/mpi_communicator.h"
#include "launch/world.h"

namespace pgkm {
namespace {

constexpr int kLayerTag = 7301;

class MpiWorld final : public World {
 public:
  MpiWorld(int* argc, char*** argv) : session_(argc, argv), everyone_(MPI_COMM_WORLD) {}
  int rank() const override { return session_.world_rank(); }
  int size() const override { return session_.world_size(); }
  int local_rank() const override { return session_.local_rank(); }
  Communicator& everyone() override { return everyone_; }
  std::string where() const override {
    return "rank " + std::to_string(rank()) + " on " + session_.hostname();
  }
  void send_to_root(std::vector<std::byte> message) override {
    pending_.push_back(everyone_.send_bytes(0, kLayerTag, std::move(message)));
    // Forget sends that have completed so their buffers are freed as we go.
    std::erase_if(pending_, [](MpiCommunicator::PendingSend& s) { return s.done(); });
  }
  std::optional<std::vector<std::byte>> poll_root() override {
    const std::optional<int> source = everyone_.probe_source(kLayerTag);
    if (!source) return std::nullopt;
    return everyone_.recv_bytes(*source, kLayerTag);
  }
  std::vector<std::byte> wait_root() override {
    const std::optional<int> source = everyone_.wait_any_source(kLayerTag);
    PGKM_ASSERT(source.has_value());
    return everyone_.recv_bytes(*source, kLayerTag);
  }
  void flush_sends() override {
    for (auto& s : pending_)
      s.wait();
    pending_.clear();
  }
  [[noreturn]] void abort(int code) override { MpiSession::abort(code); }

 private:
  MpiSession session_;
  MpiCommunicator everyone_;
  std::vector<MpiCommunicator::PendingSend> pending_;
};

}  // namespace

std::unique_ptr<World> make_mpi_world(int* argc, char*** argv) {
  return std::make_unique<MpiWorld>(argc, argv);
}

}  // namespace pgkm
