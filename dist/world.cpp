#include "dist/world.h"

#include <cstdlib>

#include "core/errors.h"

namespace pgkm {

#ifdef PGKM_HAVE_MPI
std::unique_ptr<World> make_mpi_world(int* argc, char*** argv);  // dist/mpi_world.cpp
#endif

namespace {

// One rank has nobody to send to and nobody to hear from.
class NoLayerChannel final : public LayerChannel {
 public:
  void flush() override {}

 protected:
  void send_bytes(std::vector<std::byte>) override { PGKM_ASSERT(false, "one-rank world"); }
  std::optional<std::vector<std::byte>> poll_bytes() override { return std::nullopt; }
  std::vector<std::byte> wait_bytes() override {
    PGKM_ASSERT(false, "one-rank world has no other rank to wait for");
  }
};

class SingleProcessWorld final : public World {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  int local_rank() const override { return 0; }
  int ranks_on_this_node() const override { return 1; }
  Communicator& everyone() override { return single_process_group(); }
  LayerChannel& layers() override { return channel_; }
  std::string where() const override { return ""; }
  [[noreturn]] void abort(int code) override { std::exit(code); }

 private:
  NoLayerChannel channel_;
};

// Whether a parallel launcher started this process: initialising MPI otherwise would
// make every plain `pgkm` call pay for (and depend on) an MPI singleton start.
bool started_by_launcher() {
  for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE"}) {
    if (std::getenv(v) != nullptr) return true;
  }
  return false;
}

}  // namespace

std::unique_ptr<World> make_single_process_world() {
  return std::make_unique<SingleProcessWorld>();
}

std::unique_ptr<World> make_world([[maybe_unused]] int* argc, [[maybe_unused]] char*** argv) {
#ifdef PGKM_HAVE_MPI
  if (started_by_launcher()) return make_mpi_world(argc, argv);
#else
  (void)started_by_launcher;
#endif
  return make_single_process_world();
}

}  // namespace pgkm
