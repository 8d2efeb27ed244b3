#include "dist/layer_channel.h"

#include "core/errors.h"
#include "io/layer_wire.h"

namespace pgkm {

void LayerChannel::send(const LayerRecord& layer, bool resumed) {
  const std::vector<std::byte> encoded = io::encode_layer(layer);
  std::vector<std::byte> message;
  message.reserve(encoded.size() + 1);
  message.push_back(std::byte{resumed ? uint8_t{1} : uint8_t{0}});
  message.insert(message.end(), encoded.begin(), encoded.end());
  send_bytes(std::move(message));
}

std::optional<FinishedLayer> LayerChannel::poll() {
  std::optional<std::vector<std::byte>> message = poll_bytes();
  if (!message) return std::nullopt;
  return decode(*message);
}

FinishedLayer LayerChannel::wait() {
  return decode(wait_bytes());
}

FinishedLayer LayerChannel::decode(const std::vector<std::byte>& message) {
  PGKM_EXPECTS(!message.empty() && std::to_integer<uint8_t>(message[0]) <= 1, "layer message",
               "the first byte is not a resumed flag");
  return {io::decode_layer(std::span(message).subspan(1), "layer message"),
          message[0] == std::byte{1}};
}

}  // namespace pgkm
