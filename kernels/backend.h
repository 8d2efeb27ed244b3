// The backend seam (docs/ARCHITECTURE.md, "The two seams").
//
// The k-means driver in engine/ is written once against this interface; the CPU
// backend (kernels/cpu) and the CUDA backend (kernels/cuda) implement it. Nothing
// here includes CUDA or MPI headers. Backends make the layer's points resident
// once (upload) and then run many passes over them without copying them again.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "core/limits.h"
#include "kernels/fixed_point.h"

namespace pgkm {

// A layer's points, made resident by Backend::upload. Opaque outside the backend
// that created it; passing it to another backend is a programming error.
class ResidentPoints {
 public:
  virtual ~ResidentPoints() = default;
  virtual int64_t size() const = 0;  // number of points n
  virtual int dim() const = 0;       // block size b, 1..kMaxBlockSize
};

// What one pruned assignment pass did (Backend::assign_pruned). Overwritten by every
// call. The fraction of the brute-force work done is scored / full, or
// scored_fraction(); dividing scored by `points` gives centroids scored per point.
struct SearchStats {
  int64_t points = 0;       // n, points assigned
  int64_t centroids = 0;    // k
  int64_t scored = 0;       // sum over points of the centroids scored (k per brute-forced point)
  int64_t full = 0;         // n * k: what brute force scores
  int64_t brute_force = 0;  // points scored against all k centroids (no pruning helped)

  double scored_fraction() const { return full > 0 ? double(scored) / double(full) : 0.0; }
};

class Backend {
 public:
  virtual ~Backend() = default;

  // "cpu-avx2", "cpu-scalar", "cuda:0", ...: for logs and reports.
  virtual std::string name() const = 0;

  // Makes points resident for repeated passes.
  // points: [n, dim] row-major float32, finite. weights: [n] integer multiplicity of
  // each point (>= 1; a point standing for several identical weights counts that many).
  virtual std::unique_ptr<ResidentPoints> upload(std::span<const float> points,
                                                 std::span<const uint32_t> weights, int dim) = 0;

  // Nearest centroid of every point by squared L2 distance; ties go to the lowest index.
  // centroids: [k, dim] row-major. codes: [n] out. dist: [n] out, the squared distance
  // from each point to its centroid. Memory is O(n + k*dim): no n x k matrix.
  //
  // Arithmetic contract (shared by every backend so that codes match bit for bit):
  // score_j = fma(x[dim-1], c_j[dim-1], ... fma(x[0], c_j[0], -0.5f * |c_j|^2)),
  // |c_j|^2 = fma(c[dim-1], c[dim-1], ... fma(c[0], c[0], 0.f)); the code is the
  // lowest j with the largest score; dist = sum_d fma order of (x_d - c_d)^2.
  virtual void assign(const ResidentPoints& points, std::span<const float> centroids,
                      std::span<uint32_t> codes, std::span<float> dist) = 0;

  // The same codes and dist as assign, bit for bit (ties included), found by scoring
  // only the centroids that can win. previous: [n], each < k, the code every point had
  // before the centroids moved (any codes give the exact result; recent ones make the
  // search small). previous may be the same span as codes (updated in place); otherwise
  // the two must not overlap. dist may be empty when the caller needs no distances (k-means
  // does not): the CPU backend then writes only the codes that change when updating in
  // place, instead of every point's code and distance at random places. stats: out, the
  // work done. This default scores all k
  // centroids (assign) and says so in stats; the CPU backend prunes (kernels/candidates.h)
  // and keeps, inside `points`, the points sorted by the codes it returned (and, for
  // assign_accumulate_pruned, their sums), so that the next pass starting from those
  // codes need not sort or add up everything again. That state is a cache: results never
  // depend on it, but one resident set must not be used by two calls at once.
  virtual void assign_pruned(const ResidentPoints& points, std::span<const float> centroids,
                             std::span<const uint32_t> previous, std::span<uint32_t> codes,
                             std::span<float> dist, SearchStats& stats);

  // Per-centroid sums and counts of the points, by code.
  // codes: [n], each < k. sums: [k, dim] out, sum over points of weight * fp.quantize(x),
  // exact integers, so independent of the order of addition. counts: [k] out, sum of
  // weights. Both are overwritten (not added to).
  virtual void accumulate(const ResidentPoints& points, std::span<const uint32_t> codes,
                          const FixedPoint& fp, std::span<int64_t> sums,
                          std::span<uint64_t> counts) = 0;

  // assign, then accumulate over the codes it found. A backend may fuse the two passes
  // (the CUDA backend does: the points are read once); results are the same bits.
  virtual void assign_accumulate(const ResidentPoints& points, std::span<const float> centroids,
                                 const FixedPoint& fp, std::span<uint32_t> codes,
                                 std::span<float> dist, std::span<int64_t> sums,
                                 std::span<uint64_t> counts) {
    assign(points, centroids, codes, dist);
    accumulate(points, codes, fp, sums, counts);
  }

  // assign_pruned, then accumulate over the codes it found: the call k-means makes every
  // pass, with the codes of the previous pass as `previous` (may alias `codes`).
  // Arguments as in assign_pruned and accumulate; results are the same bits as
  // assign_accumulate.
  virtual void assign_accumulate_pruned(const ResidentPoints& points,
                                        std::span<const float> centroids,
                                        std::span<const uint32_t> previous, const FixedPoint& fp,
                                        std::span<uint32_t> codes, std::span<float> dist,
                                        std::span<int64_t> sums, std::span<uint64_t> counts,
                                        SearchStats& stats) {
    assign_pruned(points, centroids, previous, codes, dist, stats);
    accumulate(points, codes, fp, sums, counts);
  }
};

// The one check of points entering the engine or a backend (run_kmeans, every
// Backend::upload): dim in 1..kMaxBlockSize, whole vectors, every value finite with
// |x| <= 1e18 (so fixed-point sums cannot overflow), and, when `weights` is not empty,
// one weight >= 1 per vector. Throws InputError(context, ...) naming the vector and
// coordinate. points: [n, dim] row-major; weights: [n] or empty.
void check_points(std::span<const float> points, std::span<const uint32_t> weights, int dim,
                  const std::string& context);

// The argument checks every backend makes, with one set of messages; `context` names the
// backend ("cpu backend", "cuda backend"). Run before any work (or any device call).
//   upload: check_points, and one weight per point.
void check_upload(std::span<const float> points, std::span<const uint32_t> weights, int dim,
                  const std::string& context);
//   centroids [k, dim]: a positive multiple of dim, few enough for 32-bit offsets.
void check_centroids(size_t centroid_values, int dim, const std::string& context);
//   assign over n resident points: centroids as above, codes [n] and dist [n].
void check_assign_args(int64_t n, int dim, size_t centroid_values, size_t codes, size_t dist,
                       const std::string& context);
//   accumulate: codes [n] each < k, sums [k, dim], counts [k] (k = counts size).
void check_accumulate_args(int64_t n, int dim, std::span<const uint32_t> codes, size_t sums,
                           size_t counts, const std::string& context);
//   assign_accumulate: the assign checks, sums [k, dim] and counts [k] for the k centroids.
void check_assign_accumulate_args(int64_t n, int dim, size_t centroid_values, size_t codes,
                                  size_t dist, size_t sums, size_t counts,
                                  const std::string& context);
//   assign_pruned: previous [n], each < k; either the same span as codes or disjoint.
//   (Its dist may also be empty: check_assign_args with dist = n then.)
void check_previous_codes(std::span<const uint32_t> previous, std::span<const uint32_t> codes,
                          int64_t n, int64_t k, const std::string& context);

// Instruction sets of the CPU backend's kernels, narrowest first.
enum class CpuIsa { kScalar, kAvx2, kAvx512 };

struct CpuBackendOptions {
  // Worker threads; 0 means all hardware threads.
  int threads = 0;
  // Force the portable scalar kernels even where AVX2/FMA exists (tests, old CPUs).
  bool force_scalar = false;
  // The widest kernels to use where the CPU has them (it falls back to narrower ones).
  // kAvx512 doubles the assignment throughput of kAvx2 on a Sapphire Rapids Xeon
  // (bench_assign avx512_vs_avx2) with the same bits, so it is used wherever the CPU has it.
  CpuIsa widest_isa = CpuIsa::kAvx512;
};

// The CPU backend: AVX-512 or AVX2+FMA kernels chosen at run time where the CPU has
// them, portable scalar kernels (same arithmetic, same results) otherwise.
std::unique_ptr<Backend> make_cpu_backend(const CpuBackendOptions& options = {});

// Whether this build has the CUDA backend (kernels/cuda), and how many CUDA devices are
// visible (0 without the backend, a driver or a device).
bool cuda_backend_built();
int cuda_device_count();

// The CUDA backend on device `device` (kernels/cuda). Throws SystemError when the build
// has no CUDA backend or the device cannot be used.
std::unique_ptr<Backend> make_cuda_backend(int device);

}  // namespace pgkm
