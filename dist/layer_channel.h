// The stream of finished layers from the rank that ran each one to rank 0, which writes
// the archive. The channel owns the protocol: a message is one byte (1 = the layer was
// reused from a checkpoint) followed by the layer in io/layer_wire.h's encoding; messages
// from one rank arrive in the order it sent them. Transports (MPI, none for one rank)
// implement the byte-level half.
#pragma once

#include <cstddef>
#include <optional>
#include <vector>

#include "engine/layer_record.h"

namespace pgkm {

struct FinishedLayer {
  LayerRecord layer;
  bool resumed = false;  // reused from a checkpoint by --resume
};

class LayerChannel {
 public:
  virtual ~LayerChannel() = default;

  // Non-root ranks: hands a finished layer to rank 0 without waiting for it.
  void send(const LayerRecord& layer, bool resumed);
  // Rank 0: a layer that has arrived, if any (never blocks).
  std::optional<FinishedLayer> poll();
  // Rank 0: the next layer, waiting for it.
  FinishedLayer wait();
  // Non-root ranks: waits until every layer sent has been delivered.
  virtual void flush() = 0;

 protected:
  virtual void send_bytes(std::vector<std::byte> message) = 0;
  virtual std::optional<std::vector<std::byte>> poll_bytes() = 0;
  virtual std::vector<std::byte> wait_bytes() = 0;

 private:
  static FinishedLayer decode(const std::vector<std::byte>& message);
};

}  // namespace pgkm
