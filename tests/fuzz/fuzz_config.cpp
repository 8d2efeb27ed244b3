// libFuzzer target: any bytes given to parse_config, and any config that parses applied to a
// fixed small model, must end in a plan or an InputError, never in a crash or another
// exception.
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "core/errors.h"
#include "io/config.h"

namespace {

const std::vector<pgkm::io::TensorDesc>& model() {
  static const std::vector<pgkm::io::TensorDesc> tensors = {
      {"embeddings.word_embeddings.weight", "F32", {512, 32}},
      {"embeddings.position_ids", "I64", {1, 64}},
      {"encoder.layer.0.attention.self.query.weight", "F16", {32, 32}},
      {"encoder.layer.0.attention.self.query.bias", "F16", {32}},
      {"encoder.layer.0.output.dense.weight", "BF16", {32, 64}},
      {"encoder.layer.0.output.LayerNorm.weight", "F32", {32}},
      {"decoder.layers.0.fc1.weight", "F32", {64, 32}},
      {"module.decoder.layers.1.self_attn.q_proj.weight", "F32", {32, 32}},
      {"decoder.embed_tokens.weight", "F32", {256, 32}},
      {"features.0.weight", "F32", {16, 3, 3, 3}},
      {"weight", "F32", {8, 8}},
  };
  return tensors;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    const pgkm::io::QuantConfig config = pgkm::io::parse_config(text, "fuzz.yaml");
    pgkm::io::plan_layers(config, model(), false);
    pgkm::io::plan_layers(config, model(), true);
  } catch (const pgkm::InputError&) {
    // Rejecting bad input with a message is the expected outcome.
  }
  return 0;
}
