// `pgkm quantize`: model + config -> HDF5 archive (+ JSON report), resumable.
#include <omp.h>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <nlohmann/json.hpp>

#include "engine/errors.h"
#include "engine/quantize_layer.h"
#include "engine/size_plan.h"
#include "io/archive.h"
#include "io/config.h"
#include "io/digest.h"
#include "io/report.h"
#include "io/safetensors.h"
#include "launch/commands.h"
#include "launch/format.h"
#include "launch/progress.h"

namespace pgkm {
namespace {

// One layer to quantize, with everything decided before any clustering starts.
struct PlannedLayer {
  io::LayerPlan plan;
  const io::TensorInfo* info = nullptr;
  KMeansParams params;
  std::string settings_digest;
  double cost = 0;
};

void validate(const QuantizeOptions& o) {
  PGKM_EXPECTS(o.centroid_dtype == "f16" || o.centroid_dtype == "f32", "--centroid-dtype", "'",
               o.centroid_dtype, "' is not f16 or f32");
  PGKM_EXPECTS(o.iterations >= 0, "--iters", o.iterations, " is negative");
  PGKM_EXPECTS(o.threads >= 0, "--threads", o.threads, " is negative");
  PGKM_EXPECTS(!o.out.empty() || o.dry_run, "--out", "an output archive path is required");
  parse_algorithm(o.algorithm);
}

std::vector<io::TensorDesc> describe(const io::SafetensorsModel& model) {
  std::vector<io::TensorDesc> out;
  for (const io::TensorInfo& t : model.tensors())
    out.push_back({t.name, t.dtype, t.shape});
  return out;
}

// Every setting that changes a layer's codebook and codes; a resumed layer must match.
std::string settings_digest(const KMeansParams& p, int block_size, const std::string& dtype) {
  const std::string text =
      str_cat("pgkm-layer-settings-v1|", algorithm_name(p.algorithm), "|b=", block_size,
              "|k=", p.n_centroids, "|iters=", p.iterations, "|seed=", p.seed, "|ipq=", p.ipq.eps,
              ",", p.ipq.max_tries, "|pg=", p.pg.max_rounds, "|dwc=", p.dwc.c_sd, ",", p.dwc.c_mc,
              ",", p.dwc.initial_epsilon_scale, ",", p.dwc.count_weighted, ",",
              p.dwc.max_epsilon_updates, "|centroids=", dtype);
  return io::digest_hex(io::digest64(std::as_bytes(std::span(text.data(), text.size()))));
}

std::vector<PlannedLayer> plan_run(const QuantizeOptions& o, const io::SafetensorsModel& model,
                                   const io::Plan& plan) {
  std::vector<PlannedLayer> layers;
  for (const io::LayerPlan& lp : plan.quantize) {
    PlannedLayer l;
    l.plan = lp;
    l.info = model.find(lp.tensor);
    PGKM_ASSERT(l.info != nullptr, "planned tensor missing: ", lp.tensor);
    l.params.algorithm = lp.algorithm.value_or(parse_algorithm(o.algorithm));
    l.params.n_centroids = lp.n_centroids;
    l.params.iterations = lp.iterations.value_or(o.iterations);
    l.params.seed = o.seed;
    l.settings_digest = settings_digest(l.params, lp.block_size, o.centroid_dtype);
    l.cost = clustering_cost(l.info->numel() / lp.block_size, lp.n_centroids, lp.block_size,
                             l.params.iterations);
    layers.push_back(std::move(l));
  }
  return layers;
}

WeightView view_of(const io::SafetensorsModel& model, const io::TensorInfo& t) {
  return {t.name, *t.quantizable(), t.shape, model.bytes(t)};
}

io::ArchiveLayer to_archive(const QuantizedLayer& q, const PlannedLayer& l,
                            const std::string& source_digest, bool f16) {
  const KMeansResult& r = q.kmeans;
  io::ArchiveLayer a;
  a.name = q.name;
  a.shape = q.shape;
  a.source_dtype = dtype_name(q.source_dtype);
  a.module_type = io::module_type_name(l.plan.type);
  a.block_size = l.plan.block_size;
  a.n_centroids = l.plan.n_centroids;
  a.algorithm = algorithm_name(l.params.algorithm);
  a.iterations = r.iterations_run;
  a.empty_clusters = r.empty_clusters;
  a.initial_empty = r.initial_empty;
  a.objective = r.objective;
  a.resolution_rounds = r.resolution_rounds;
  a.seconds = r.seconds_total;
  a.distinct_vectors = r.distinct_vectors;
  a.clustered_points = r.clustered_points;
  a.stopped_early = r.stopped_early;
  a.source_digest = source_digest;
  a.settings_digest = l.settings_digest;
  a.centroids_f16 = f16;
  a.centroids = r.centroids;
  a.codes = r.codes;
  a.counts = r.counts;
  return a;
}

io::ReportLayer report_layer(const PlannedLayer& l) {
  io::ReportLayer r;
  r.name = l.plan.tensor;
  r.shape = l.info->shape;
  r.block_size = l.plan.block_size;
  r.n_centroids = l.plan.n_centroids;
  r.algorithm = algorithm_name(l.params.algorithm);
  r.original_mib = original_bytes(l.info->numel()) / kBytesPerMiB;
  r.compressed_mib =
      quantized_bytes(l.info->numel(), l.plan.block_size, l.plan.n_centroids) / kBytesPerMiB;
  return r;
}

// Whole-model sizes: quantized layers by SizeTracker, every other parameter at 4 bytes.
io::ReportTotals size_totals(const io::SafetensorsModel& model,
                             const std::vector<io::ReportLayer>& layers) {
  io::ReportTotals t;
  for (const io::TensorInfo& info : model.tensors()) {
    if (counts_as_parameter(info.dtype)) {
      t.original_mib += original_bytes(info.numel()) / kBytesPerMiB;
      t.compressed_mib += original_bytes(info.numel()) / kBytesPerMiB;
    }
  }
  for (const io::ReportLayer& l : layers)
    t.compressed_mib += l.compressed_mib - l.original_mib;
  return t;
}

// Identifies a source file cheaply: its size and a digest of its header (names, dtypes,
// shapes, offsets). Tensor contents are covered by each layer's own source digest.
std::string file_header_digest(const std::string& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  const auto size = static_cast<uint64_t>(in.tellg());
  in.seekg(0);
  uint64_t header_len = 0;
  in.read(reinterpret_cast<char*>(&header_len), 8);
  // The model was validated when it was opened, so the header length is sane.
  std::string header(static_cast<size_t>(std::min<uint64_t>(header_len, size)), '\0');
  in.read(header.data(), static_cast<std::streamsize>(header.size()));
  return str_cat(
      "size=", size, ";header=",
      io::digest_hex(io::digest64(std::as_bytes(std::span(header.data(), header.size())))));
}

std::string config_format(const io::QuantConfig& c) {
  return c.format == io::QuantConfig::Format::kFairseq ? "fairseq-yaml" : "native";
}

io::ArchiveHeader archive_header(const QuantizeOptions& o, const io::QuantConfig& config,
                                 const io::SafetensorsModel& model) {
  io::ArchiveHeader h;
  h.tool_version = PGKM_VERSION;
  h.config_text = config.text;
  h.config_format = config_format(config);
  h.algorithm = o.algorithm;
  h.seed = o.seed;
  h.iterations = o.iterations;
  const KMeansParams defaults;
  nlohmann::json settings = {{"model", o.model},
                             {"config", o.config},
                             {"algorithm", o.algorithm},
                             {"iterations", o.iterations},
                             {"seed", o.seed},
                             {"centroid_dtype", o.centroid_dtype},
                             {"ipq_eps", defaults.ipq.eps},
                             {"ipq_max_tries", defaults.ipq.max_tries},
                             {"pg_max_rounds", defaults.pg.max_rounds},
                             {"dwc_c_sd", defaults.dwc.c_sd},
                             {"dwc_c_mc", defaults.dwc.c_mc},
                             {"dwc_initial_epsilon_scale", defaults.dwc.initial_epsilon_scale},
                             {"dwc_count_weighted", defaults.dwc.count_weighted}};
  h.settings_json = settings.dump();
  nlohmann::json files = nlohmann::json::object();
  for (const std::string& f : model.files())
    files[f] = file_header_digest(f);
  h.source_files_json = files.dump();
  const std::time_t now = std::time(nullptr);
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
  h.created_utc = stamp;
  return h;
}

void print_dry_run(const std::vector<io::ReportLayer>& layers, const io::ReportTotals& t) {
  for (size_t i = 0; i < layers.size(); ++i) {
    const auto& l = layers[i];
    std::printf("[%*zu/%zu] %s %s b=%d K=%lld %s: %s -> %s MiB\n", digits(layers.size()), i + 1,
                layers.size(), l.name.c_str(), shape_text(l.shape).c_str(), l.block_size,
                static_cast<long long>(l.n_centroids), l.algorithm.c_str(),
                fixed(l.original_mib, 3).c_str(), fixed(l.compressed_mib, 3).c_str());
  }
  std::printf(
      "dry run: %zu layers to quantize; model %s MiB -> %s MiB, ratio %s (fairseq "
      "SizeTracker accounting)\n",
      layers.size(), fixed(t.original_mib, 2).c_str(), fixed(t.compressed_mib, 2).c_str(),
      fixed(t.ratio(), 2).c_str());
}

}  // namespace

void run_quantize(const QuantizeOptions& o) {
  validate(o);
  const auto start = std::chrono::steady_clock::now();
  const io::SafetensorsModel model = io::SafetensorsModel::open(o.model);
  const io::QuantConfig config = io::load_config(o.config);
  const io::Plan plan = io::plan_layers(config, describe(model), o.strict);
  for (const std::string& w : plan.warnings)
    std::fprintf(stderr, "pgkm: warning: %s\n", w.c_str());
  const std::vector<PlannedLayer> layers = plan_run(o, model, plan);
  std::vector<io::ReportLayer> report;
  for (const PlannedLayer& l : layers)
    report.push_back(report_layer(l));
  io::ReportTotals totals = size_totals(model, report);

  if (o.dry_run) {  // header only: no tensor data is read
    print_dry_run(report, totals);
    if (!o.report.empty()) io::write_report(o.report, o.model, o.config, true, report, totals);
    return;
  }
  // Bad values anywhere fail the run before any clustering or output.
  for (const PlannedLayer& l : layers)
    check_weight_values(view_of(model, *l.info));

  if (o.threads > 0) omp_set_num_threads(o.threads);
  auto backend = make_cpu_backend({.threads = o.threads});
  io::LayerCheckpoints checkpoints(o.out);
  if (!o.resume) checkpoints.remove_all();
  io::ArchiveWriter writer(o.out, archive_header(o, config, model));
  double total_cost = 0;
  for (const PlannedLayer& l : layers)
    total_cost += l.cost;
  Progress progress(total_cost);
  for (size_t i = 0; i < layers.size(); ++i) {
    const PlannedLayer& l = layers[i];
    const WeightView view = view_of(model, *l.info);
    const std::string source_digest = io::digest_hex(io::digest64(view.bytes));
    std::optional<io::ArchiveLayer> done =
        o.resume ? checkpoints.load_matching(l.plan.tensor, source_digest, l.settings_digest)
                 : std::nullopt;
    report[i].resumed = done.has_value();
    if (!done) {
      progress.begin_layer(l.plan.tensor, l.cost, l.params.iterations);
      const QuantizedLayer q = quantize_layer(
          *backend, view, l.plan.block_size, l.params,
          [&](const IterationStats& s) { progress.iteration_done(s.iteration + 1); });
      done = to_archive(q, l, source_digest, o.centroid_dtype == "f16");
      checkpoints.save(*done);
    }
    writer.write_layer(*done);
    report[i].empty_clusters = done->empty_clusters;
    report[i].objective = done->objective;
    report[i].iterations = done->iterations;
    report[i].resolution_rounds = done->resolution_rounds;
    report[i].seconds = done->seconds;
    progress.layer_line(layer_line(i, layers.size(), report[i]));
  }
  for (const std::string& name : plan.keep) {
    const io::TensorInfo& t = *model.find(name);
    const auto bytes = model.bytes(t);
    const auto* first = reinterpret_cast<const uint8_t*>(bytes.data());
    writer.write_kept(
        {t.name, t.dtype, t.shape, std::vector<uint8_t>(first, first + bytes.size())});
  }
  writer.finalize();
  checkpoints.remove_all();
  totals.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  progress.clear();
  std::printf(
      "total: %zu layers quantized, %zu tensors kept; %s MiB -> %s MiB, ratio %s; %s s; "
      "archive %s\n",
      layers.size(), plan.keep.size(), fixed(totals.original_mib, 2).c_str(),
      fixed(totals.compressed_mib, 2).c_str(), fixed(totals.ratio(), 2).c_str(),
      fixed(*totals.seconds, 1).c_str(), o.out.c_str());
  if (!o.report.empty()) io::write_report(o.report, o.model, o.config, false, report, totals);
}

}  // namespace pgkm
