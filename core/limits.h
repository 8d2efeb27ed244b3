// Limits shared by every layer of pgkm: what a config may ask for, what the kernels
// support and what the archive accepts are one set of numbers.
#pragma once

#include <cstdint>

namespace pgkm {

// Block size b (the PQ subvector length): the kernels keep one subvector in registers.
inline constexpr int kMinBlockSize = 1;
inline constexpr int kMaxBlockSize = 32;

// Number of centroids K a config may ask for (codes are stored in at most 16 bits).
inline constexpr int64_t kMinCentroids = 2;
inline constexpr int64_t kMaxCentroids = 65536;

// Worker threads per rank (--threads): far above any machine's cores, far below what
// exhausts the OS (100,000 threads crashed pgkm; 20,000 ran for minutes).
inline constexpr int kMaxThreads = 1024;

// k-means iterations a config may ask for.
inline constexpr int kMaxIterations = 10000;

}  // namespace pgkm
