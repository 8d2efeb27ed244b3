// Fixed chunking of an index range, the basis of every thread-count-independent loop in
// engine/: work is cut into the same chunks whatever the number of threads, and partial
// results are combined in chunk order.
#pragma once

#include <algorithm>
#include <cstdint>

namespace pgkm {

// Where chunk c starts when [0, n) is cut into `chunks` contiguous chunks whose sizes
// differ by at most one.
inline int64_t chunk_begin(int64_t n, int64_t chunks, int64_t c) {
  return c * (n / chunks) + std::min(c, n % chunks);
}

}  // namespace pgkm
