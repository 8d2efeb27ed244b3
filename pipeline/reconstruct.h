// Reading an archive back into dense weights.
#pragma once

#include <cstddef>
#include <string>

namespace pgkm {

struct ReconstructSummary {
  size_t layers = 0;  // dequantized layers written
  size_t kept = 0;    // kept tensors written unchanged
};

// Writes every layer of the archive at `archive` dequantized (centroids[codes], in the
// layer's source dtype) and every kept tensor byte for byte into one safetensors file
// `out`, atomically. Throws InputError for a damaged archive, SystemError for a failed
// write.
ReconstructSummary reconstruct_model(const std::string& archive, const std::string& out);

}  // namespace pgkm
