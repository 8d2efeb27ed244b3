// libFuzzer target for the safetensors header parser: arbitrary bytes are a file's whole
// content. InputError is the expected outcome for bad input; anything else (a crash, an
// ASan report, another exception, a header whose offsets escape the file) is a bug.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>

#include "core/errors.h"
#include "io/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto bytes = std::as_bytes(std::span<const uint8_t>(data, size));
  try {
    const pgkm::io::SafetensorsHeader h = pgkm::io::parse_header(bytes, "fuzz.safetensors");
    // What SafetensorsFile::bytes relies on: every accepted tensor lies inside the file
    // and its size matches its shape.
    for (const pgkm::io::TensorInfo& t : h.tensors) {
      const uint64_t esize = pgkm::io::safetensors_dtype_size(t.dtype);
      const bool inside = t.data_begin <= t.data_end && t.data_end <= h.data_size &&
                          h.data_offset + h.data_size == size;
      const bool sized = static_cast<uint64_t>(t.numel()) * esize == t.data_end - t.data_begin;
      if (!inside || !sized || esize == 0) std::abort();
    }
  } catch (const pgkm::InputError&) {
  }
  return 0;
}
