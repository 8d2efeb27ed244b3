// The host half of the CUDA backend (see device_engine.h): every entry point checks all
// of its arguments with the CPU backend's rules and messages (kernels/backend.h) before the engine
// touches the device, keeps track of what is resident, and ends with at most one
// download, the call's only synchronisation.
#include <memory>
#include <span>
#include <string>

#include "core/errors.h"
#include "kernels/cuda/device_engine.h"

namespace pgkm::cuda {
namespace {

constexpr const char* kContext = "cuda backend";

class CudaBackendFront final : public CudaBackend {
 public:
  explicit CudaBackendFront(std::unique_ptr<DeviceEngine> engine) : engine_(std::move(engine)) {}

  std::string name() const override { return engine_->name(); }
  CudaStreamHandle stream() const override { return engine_->stream(); }

  std::unique_ptr<ResidentPoints> upload(std::span<const float> points,
                                         std::span<const uint32_t> weights, int dim) override {
    check_upload(points, weights, dim, kContext);
    return engine_->upload(points, weights, dim);
  }

  void assign(const ResidentPoints& points, std::span<const float> centroids,
              std::span<uint32_t> codes, std::span<float> dist) override {
    check_ours(points);
    check_assign_args(points.size(), points.dim(), centroids.size(), codes.size(), dist.size(),
                      kContext);
    engine_->set_centroids(centroids, points.dim());
    note_centroids(centroids.size(), points.dim());
    engine_->assign(points, true, nullptr);
    note_codes(points, k_);
    EngineDownload out;
    out.codes = codes;
    out.dist = dist;
    engine_->download(out);
  }

  void accumulate(const ResidentPoints& points, std::span<const uint32_t> codes,
                  const FixedPoint& fp, std::span<int64_t> sums,
                  std::span<uint64_t> counts) override {
    check_ours(points);
    check_accumulate_args(points.size(), points.dim(), codes, sums.size(), counts.size(), kContext);
    const int64_t k = static_cast<int64_t>(counts.size());
    engine_->set_codes(codes);
    note_codes(points, k);
    engine_->accumulate(points, k, fp);
    note_sums(k, points.dim());
    EngineDownload out;
    out.sums = sums;
    out.counts = counts;
    engine_->download(out);
  }

  void assign_accumulate(const ResidentPoints& points, std::span<const float> centroids,
                         const FixedPoint& fp, std::span<uint32_t> codes, std::span<float> dist,
                         std::span<int64_t> sums, std::span<uint64_t> counts) override {
    check_ours(points);
    check_assign_accumulate_args(points.size(), points.dim(), centroids.size(), codes.size(),
                                 dist.size(), sums.size(), counts.size(), kContext);
    engine_->set_centroids(centroids, points.dim());
    note_centroids(centroids.size(), points.dim());
    engine_->assign(points, true, &fp);
    note_codes(points, k_);
    note_sums(k_, points.dim());
    EngineDownload out;
    out.codes = codes;
    out.dist = dist;
    out.sums = sums;
    out.counts = counts;
    engine_->download(out);
  }

  void set_centroids(std::span<const float> centroids, int dim) override {
    check_centroids(centroids.size(), dim, kContext);
    engine_->set_centroids(centroids, dim);
    note_centroids(centroids.size(), dim);
  }

  void assign_resident(const ResidentPoints& points, const FixedPoint* fp) override {
    check_ours(points);
    check_resident_centroids(points.dim());
    engine_->assign(points, false, fp);
    note_codes(points, k_);
    if (fp != nullptr) note_sums(k_, points.dim());
  }

  void update_means(const FixedPoint& fp) override {
    PGKM_EXPECTS(k_ > 0 && sums_k_ == k_ && sums_dim_ == dim_, kContext,
                 "update_means needs sums over the ", k_, " resident centroids of dim ", dim_,
                 "; the resident sums are over k=", sums_k_, " of dim ", sums_dim_);
    engine_->update_means(fp);
  }

  void objective_chunks(const ResidentPoints& points, std::span<double> partials) override {
    check_ours(points);
    check_resident_centroids(points.dim());
    PGKM_EXPECTS(codes_points_ == &points && codes_n_ == points.size() && codes_bound_ <= k_,
                 kContext, "the objective needs resident codes of these points below k=", k_,
                 ": run assign_resident on them first");
    const int64_t chunks = (points.size() + kObjectiveChunk - 1) / kObjectiveChunk;
    PGKM_EXPECTS(partials.size() == static_cast<size_t>(chunks), kContext, "partials hold ",
                 partials.size(), " values, expected ", chunks, " chunks of ", kObjectiveChunk,
                 " points");
    engine_->objective_chunks(points);
    EngineDownload out;
    out.partials = partials;
    engine_->download(out);
  }

  void download(const CudaDownload& out) override {
    check_size(out.codes.size(), codes_n_, "codes");
    check_size(out.sums.size(), sums_k_ * sums_dim_, "sums");
    check_size(out.counts.size(), sums_k_, "counts");
    check_size(out.centroids.size(), k_ * dim_, "centroids");
    EngineDownload request;
    request.codes = out.codes;
    request.sums = out.sums;
    request.counts = out.counts;
    request.centroids = out.centroids;
    engine_->download(request);
  }

  CudaResidentSums resident_sums() const override {
    if (sums_k_ < 0) return {};
    return engine_->resident_sums(sums_k_, sums_dim_);
  }

 private:
  void check_ours(const ResidentPoints& points) const {
    PGKM_EXPECTS(engine_->owns(points), kContext, "points were uploaded by another backend");
  }

  void check_resident_centroids(int dim) const {
    PGKM_EXPECTS(k_ > 0, kContext, "no resident centroids: call set_centroids first");
    PGKM_EXPECTS(dim == dim_, kContext, "points of dim ", dim,
                 " against resident centroids of dim ", dim_);
  }

  static void check_size(size_t got, int64_t resident, const char* what) {
    if (got == 0) return;
    PGKM_EXPECTS(resident >= 0 && got == static_cast<size_t>(resident), kContext, what, " hold ",
                 got, " values, but ", resident < 0 ? 0 : resident, " are resident");
  }

  void note_centroids(size_t values, int dim) {
    dim_ = dim;
    k_ = static_cast<int64_t>(values) / dim;
  }
  // The resident codes are now those of `points`, each below `bound`.
  void note_codes(const ResidentPoints& points, int64_t bound) {
    codes_points_ = &points;
    codes_n_ = points.size();
    codes_bound_ = bound;
  }
  void note_sums(int64_t k, int dim) {
    sums_k_ = k;
    sums_dim_ = dim;
  }

  std::unique_ptr<DeviceEngine> engine_;
  int64_t k_ = 0;  // resident centroids [k_, dim_]
  int dim_ = 0;
  const ResidentPoints* codes_points_ = nullptr;  // whose codes are resident
  int64_t codes_n_ = -1;
  int64_t codes_bound_ = 0;  // every resident code is below this
  int64_t sums_k_ = -1;      // resident sums [sums_k_, sums_dim_], -1: none
  int sums_dim_ = 0;
};

}  // namespace

std::unique_ptr<CudaBackend> make_cuda_backend_on(std::unique_ptr<DeviceEngine> engine) {
  return std::make_unique<CudaBackendFront>(std::move(engine));
}

}  // namespace pgkm::cuda
