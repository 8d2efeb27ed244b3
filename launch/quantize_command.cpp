// `pgkm quantize`: model + config -> HDF5 archive (+ JSON report), resumable.
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>

#include "core/atomic_file.h"
#include "core/errors.h"
#include "engine/quantize_layer.h"
#include "engine/size_plan.h"
#include "io/archive.h"
#include "io/config.h"
#include "io/digest.h"
#include "io/layer_wire.h"
#include "io/report.h"
#include "io/safetensors.h"
#include "launch/commands.h"
#include "launch/format.h"
#include "launch/progress.h"
#include "launch/world.h"

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
  PGKM_EXPECTS(o.device == "cpu" || o.device == "cuda" || o.device == "auto", "--device", "'",
               o.device, "' is not cpu, cuda or auto");
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
  nlohmann::json iterations = nlohmann::json::array();
  for (const IterationStats& s : r.per_iteration) {
    iterations.push_back({{"objective", s.objective},
                          {"empty_before", s.empty_before},
                          {"empty_after", s.empty_after},
                          {"resolution_rounds", s.resolution_rounds},
                          {"seconds_assign", s.seconds_assign},
                          {"seconds_resolve", s.seconds_resolve},
                          {"seconds_update", s.seconds_update}});
  }
  a.iteration_stats_json = iterations.dump();
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

// Which rank runs which layer. Layers whose cost exceeds shard_threshold times a fair
// share (total / ranks) would dominate the job's length on one rank: every rank runs
// them together, each assigning a slice of the points. The rest go to ranks by longest
// processing time first: biggest layer first, to the least-loaded rank. A static plan
// (rather than a rank-0 work queue) lets rank 0 cluster too, which on a small node is
// half of the machine, and every rank computes the same plan without messages.
struct Schedule {
  std::vector<size_t> shared;                // layers run by every rank, in plan order
  std::vector<std::vector<size_t>> by_rank;  // the rest, per rank, longest first
};

Schedule schedule_layers(const std::vector<PlannedLayer>& layers, int ranks,
                         double shard_threshold) {
  Schedule s;
  s.by_rank.resize(static_cast<size_t>(ranks));
  double total = 0;
  for (const PlannedLayer& l : layers)
    total += l.cost;
  std::vector<size_t> order;
  for (size_t i = 0; i < layers.size(); ++i) {
    if (ranks > 1 && layers[i].cost > shard_threshold * total / ranks) {
      s.shared.push_back(i);
    } else {
      order.push_back(i);
    }
  }
  // One rank keeps the plan's (name) order: there is nothing to balance.
  if (ranks > 1) {
    std::stable_sort(order.begin(), order.end(),
                     [&](size_t a, size_t b) { return layers[a].cost > layers[b].cost; });
  }
  std::vector<double> load(static_cast<size_t>(ranks), 0.0);
  for (size_t i : order) {
    const size_t r = static_cast<size_t>(std::min_element(load.begin(), load.end()) - load.begin());
    load[r] += layers[i].cost;
    s.by_rank[r].push_back(i);
  }
  return s;
}

// A finished layer on its way to rank 0: one byte (1 = reused from a checkpoint) and the
// layer in io/layer_wire.h's encoding.
std::vector<std::byte> layer_message(const io::ArchiveLayer& layer, bool resumed) {
  const std::vector<std::byte> encoded = io::encode_layer(layer);
  std::vector<std::byte> message;
  message.reserve(encoded.size() + 1);
  message.push_back(std::byte{resumed ? uint8_t{1} : uint8_t{0}});
  message.insert(message.end(), encoded.begin(), encoded.end());
  return message;
}

// Rank 0's side of the run: writes every finished layer into the archive as it arrives
// (never holding more than the one in hand), checkpoints it, and prints its line.
class ArchiveSink {
 public:
  ArchiveSink(const std::vector<PlannedLayer>& layers, std::vector<io::ReportLayer>& report,
              io::ArchiveWriter& writer, io::LayerCheckpoints& checkpoints, Progress& progress)
      : layers_(layers),
        report_(report),
        writer_(writer),
        checkpoints_(checkpoints),
        progress_(progress) {
    for (size_t i = 0; i < layers.size(); ++i)
      index_[layers[i].plan.tensor] = i;
  }

  void accept(const io::ArchiveLayer& layer, bool resumed) {
    writer_.write_layer(layer);
    if (!resumed) checkpoints_.save(layer);
    io::ReportLayer& r = report_[index_.at(layer.name)];
    r.resumed = resumed;
    r.empty_clusters = layer.empty_clusters;
    r.objective = layer.objective;
    r.iterations = layer.iterations;
    r.resolution_rounds = layer.resolution_rounds;
    r.seconds = layer.seconds;
    r.per_iteration_json = layer.iteration_stats_json;
    progress_.layer_line(layer_line(finished_++, layers_.size(), r));
  }

  void accept_message(std::span<const std::byte> message) {
    PGKM_ASSERT(!message.empty());
    accept(io::decode_layer(message.subspan(1), "layer message"), message[0] == std::byte{1});
  }

  size_t finished() const { return finished_; }

 private:
  const std::vector<PlannedLayer>& layers_;
  std::vector<io::ReportLayer>& report_;
  io::ArchiveWriter& writer_;
  io::LayerCheckpoints& checkpoints_;
  Progress& progress_;
  std::map<std::string, size_t> index_;
  size_t finished_ = 0;
};

// Everything a rank needs to produce layers.
struct LayerRunner {
  const QuantizeOptions& options;
  const io::SafetensorsModel& model;
  Backend& backend;
  io::LayerCheckpoints& checkpoints;
  Progress& progress;

  std::string source_digest(const PlannedLayer& l) const {
    return io::digest_hex(io::digest64(model.bytes(*l.info)));
  }

  // The layer's checkpoint, when --resume finds one with the same source and settings.
  std::optional<io::ArchiveLayer> reuse(const PlannedLayer& l, const std::string& digest) const {
    if (!options.resume) return std::nullopt;
    return checkpoints.load_matching(l.plan.tensor, digest, l.settings_digest);
  }

  // Clusters the layer, over `group` when given (every rank of it calls this).
  io::ArchiveLayer compute(const PlannedLayer& l, const std::string& digest, Communicator* group) {
    progress.begin_layer(l.plan.tensor, l.cost, l.params.iterations);
    const QuantizedLayer q = quantize_layer(
        backend, view_of(model, *l.info), l.plan.block_size, l.params,
        [&](const IterationStats& s) { progress.iteration_done(s.iteration + 1); }, group);
    return to_archive(q, l, digest, options.centroid_dtype == "f16");
  }
};

// A layer every rank runs together. Rank 0 alone decides whether its checkpoint is
// reused and tells the others, so the group never splits over a part file.
void run_shared_layer(const PlannedLayer& l, World& world, LayerRunner& runner,
                      std::optional<ArchiveSink>& sink) {
  const std::string digest = runner.source_digest(l);
  std::optional<io::ArchiveLayer> done;
  if (world.rank() == 0) done = runner.reuse(l, digest);
  std::byte reused{done ? uint8_t{1} : uint8_t{0}};
  world.everyone().broadcast(std::span(&reused, 1), 0);
  if (reused == std::byte{1}) {
    if (sink) sink->accept(*done, true);
    return;
  }
  const io::ArchiveLayer layer = runner.compute(l, digest, &world.everyone());
  if (sink) sink->accept(layer, false);
}

int threads_per_rank(const QuantizeOptions& o, const World& world) {
  if (o.threads > 0) return o.threads;
  // Ranks sharing a node would oversubscribe its cores with all-threads each.
  if (world.size() > 1 && std::getenv("OMP_NUM_THREADS") == nullptr) {
    return std::max(1, omp_get_num_procs() / world.size());
  }
  return 0;
}

// The backend --device asks for. A rank takes the GPU of its rank within the node, so
// `mpirun -np 4` on a four-GPU node puts one rank on each GPU.
std::unique_ptr<Backend> make_backend(const QuantizeOptions& o, const World& world, int threads) {
  const int gpus = cuda_device_count();
  const bool cuda = o.device == "cuda" || (o.device == "auto" && gpus > 0);
  if (!cuda) return make_cpu_backend({.threads = threads});
  PGKM_EXPECTS(cuda_backend_built(), "--device cuda",
               "this pgkm was built without the CUDA backend");
  PGKM_EXPECTS(gpus > 0, "--device cuda", "no CUDA device is visible",
               world.size() > 1 ? " to " + world.where() : std::string());
  return make_cuda_backend(world.local_rank() % gpus);
}

}  // namespace

void run_quantize(const QuantizeOptions& o, World& world) {
  validate(o);
  const bool root = world.rank() == 0;
  const auto start = std::chrono::steady_clock::now();
  const io::SafetensorsModel model = io::SafetensorsModel::open(o.model);
  const io::QuantConfig config = io::load_config(o.config);
  const io::Plan plan = io::plan_layers(config, describe(model), o.strict);
  if (root) {
    for (const std::string& w : plan.warnings)
      std::fprintf(stderr, "pgkm: warning: %s\n", w.c_str());
  }
  const std::vector<PlannedLayer> layers = plan_run(o, model, plan);
  std::vector<io::ReportLayer> report;
  for (const PlannedLayer& l : layers)
    report.push_back(report_layer(l));
  io::ReportTotals totals = size_totals(model, report);

  if (o.dry_run) {  // header only: no tensor data is read
    if (!root) return;
    print_dry_run(report, totals);
    if (!o.report.empty()) io::write_report(o.report, o.model, o.config, true, report, totals);
    return;
  }
  const Schedule schedule = schedule_layers(layers, world.size(), o.shard_threshold);
  const std::vector<size_t>& mine = schedule.by_rank[static_cast<size_t>(world.rank())];
  // Bad values in this rank's layers fail the job before any clustering or output.
  for (size_t i : schedule.shared)
    check_weight_values(view_of(model, *layers[i].info));
  for (size_t i : mine)
    check_weight_values(view_of(model, *layers[i].info));

  const int threads = threads_per_rank(o, world);
  if (threads > 0) omp_set_num_threads(threads);
  auto backend = make_backend(o, world, threads);
  io::LayerCheckpoints checkpoints(o.out);
  if (root && !o.resume) checkpoints.remove_all();
  // A killed run's temporary archive (the checkpoints hold what it finished).
  if (root) remove_stale_temporaries(o.out);
  world.everyone().barrier();  // nobody reads stale checkpoints root is removing
  double total_cost = 0;
  for (const PlannedLayer& l : layers)
    total_cost += l.cost;
  Progress progress(total_cost, world.size() == 1);
  LayerRunner runner{o, model, *backend, checkpoints, progress};
  std::optional<io::ArchiveWriter> writer;
  std::optional<ArchiveSink> sink;
  if (root) {
    writer.emplace(o.out, archive_header(o, config, model));
    sink.emplace(layers, report, *writer, checkpoints, progress);
  }
  for (size_t i : schedule.shared)
    run_shared_layer(layers[i], world, runner, sink);
  for (size_t i : mine) {
    const std::string digest = runner.source_digest(layers[i]);
    std::optional<io::ArchiveLayer> layer = runner.reuse(layers[i], digest);
    const bool resumed = layer.has_value();
    if (!layer) layer = runner.compute(layers[i], digest, nullptr);
    if (root) {
      sink->accept(*layer, resumed);
      while (auto message = world.poll_root())
        sink->accept_message(*message);
    } else {
      world.send_to_root(layer_message(*layer, resumed));
    }
  }
  if (!root) {
    world.flush_sends();
    return;
  }
  while (sink->finished() < layers.size())
    sink->accept_message(world.wait_root());
  for (const std::string& name : plan.keep) {
    const io::TensorInfo& t = *model.find(name);
    const auto bytes = model.bytes(t);
    const auto* first = reinterpret_cast<const uint8_t*>(bytes.data());
    writer->write_kept(
        {t.name, t.dtype, t.shape, std::vector<uint8_t>(first, first + bytes.size())});
  }
  writer->finalize();
  checkpoints.remove_all();
  totals.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  progress.clear();
  std::printf(
      "total: %zu layers quantized, %zu tensors kept; %s MiB -> %s MiB, ratio %s; %s s on "
      "%d rank%s (%s); archive %s\n",
      layers.size(), plan.keep.size(), fixed(totals.original_mib, 2).c_str(),
      fixed(totals.compressed_mib, 2).c_str(), fixed(totals.ratio(), 2).c_str(),
      fixed(*totals.seconds, 1).c_str(), world.size(), world.size() == 1 ? "" : "s",
      backend->name().c_str(), o.out.c_str());
  if (!o.report.empty()) io::write_report(o.report, o.model, o.config, false, report, totals);
}

}  // namespace pgkm
