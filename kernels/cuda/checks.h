// Host-side argument checks of the CUDA backend, run before any CUDA call. Plain C++, so
// the tests exercise them on machines without a GPU. The messages are the CPU backend's
// (kernels/cpu/cpu_backend.cpp) word for word, under the context "cuda backend"; these
// functions are proposed as one shared validation in kernels/backend.h.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace pgkm::cuda {

inline constexpr const char* kContext = "cuda backend";

// Backend::upload: dim in 1..kMaxBlockSize, points.size() == weights.size() * dim, every
// value finite, every weight >= 1.
void check_upload(std::span<const float> points, std::span<const uint32_t> weights, int dim);

// Centroids [k, dim]: a positive multiple of dim, few enough for 32-bit offsets.
void check_centroids(size_t centroid_values, int dim);

// Backend::assign over n resident points of dimension dim.
void check_assign(int64_t n, int dim, size_t centroid_values, size_t codes, size_t dist);

// Backend::accumulate: codes [n], sums [k, dim], counts [k] with k = counts.size(), and
// every code < k (an O(n) scan: the kernel indexes sums and counts by code).
void check_accumulate(int64_t n, int dim, std::span<const uint32_t> codes, size_t sums,
                      size_t counts);

// Backend::assign_accumulate: check_assign, the size checks of check_accumulate, and
// counts.size() == k of the centroids (the fused kernel adds into counts[code] for
// every code < k; the CPU backend's unfused default finds a short counts only when a
// code reaches past it).
void check_assign_accumulate(int64_t n, int dim, size_t centroid_values, size_t codes, size_t dist,
                             size_t sums, size_t counts);

}  // namespace pgkm::cuda
