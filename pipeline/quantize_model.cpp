#include "pipeline/quantize_model.h"

#include <omp.h>

#include <chrono>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <optional>

#include "core/atomic_file.h"
#include "core/digest.h"
#include "core/errors.h"
#include "core/file_checks.h"
#include "engine/quantize_layer.h"
#include "io/archive.h"
#include "io/config.h"
#include "io/model_source.h"
#include "io/record_json.h"
#include "io/safetensors.h"
#include "pipeline/layer_sink.h"
#include "pipeline/plan.h"
#include "pipeline/resources.h"
#include "pipeline/scheduler.h"

namespace pgkm {
namespace {

// Identifies a source file cheaply: its size and a digest of its header (names, dtypes,
// shapes, offsets). Tensor contents are covered by each layer's own source digest.
std::string file_header_digest(const io::SafetensorsFile& file) {
  return str_cat("size=", file.file_size(), ";header=", digest_hex(digest64(file.header_json())));
}

std::string now_utc() {
  const std::time_t now = std::time(nullptr);
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
  return stamp;
}

io::ArchiveHeader archive_header(const QuantizeParams& p, const io::QuantConfig& config,
                                 const io::SafetensorsModel& model) {
  io::ArchiveHeader h;
  h.tool_version = PGKM_VERSION;
  h.config_text = config.text;
  h.config_format = config.format == io::QuantConfig::Format::kFairseq ? "fairseq-yaml" : "native";
  h.algorithm = algorithm_name(p.defaults.kmeans.algorithm);
  h.seed = p.defaults.kmeans.seed;
  h.iterations = p.defaults.kmeans.iterations;
  nlohmann::json settings = io::header_settings_json(p.defaults);
  settings["model"] = p.model;
  settings["config"] = p.config;
  if (!p.importance.empty()) {
    settings["importance"] = p.importance;
    settings["importance_exponent"] = p.importance_exponent;
    settings["importance_missing"] = p.importance_missing_plain ? "plain" : "error";
    settings["importance_token_weight"] = p.importance_token_weight;
  }
  h.settings_json = settings.dump();
  nlohmann::json files = nlohmann::json::object();
  for (const io::SafetensorsFile& f : model.shards())
    files[f.path()] = file_header_digest(f);
  h.source_files_json = files.dump();
  h.created_utc = now_utc();
  return h;
}

// What a rank needs to produce layers.
class LayerProducer {
 public:
  LayerProducer(const QuantizeParams& params, const io::SafetensorsModel& model, Backend& backend,
                const io::LayerCheckpoints& checkpoints, QuantizeObserver& observer)
      : params_(params),
        model_(model),
        backend_(backend),
        checkpoints_(checkpoints),
        observer_(observer) {}

  std::string source_digest(const PlannedLayer& l) const {
    return digest_hex(digest64(model_.bytes(*l.info)));
  }

  // The layer's checkpoint, when --resume finds one with the same source and settings.
  std::optional<LayerRecord> reuse(const PlannedLayer& l, const std::string& digest) const {
    if (!params_.resume) return std::nullopt;
    std::string warning;
    auto found = reusable_checkpoint(checkpoints_, l, digest, &warning);
    if (!warning.empty()) observer_.on_warning(warning);
    return found;
  }

  // Clusters the layer over `group` (every rank of the group calls this).
  LayerRecord compute(const PlannedLayer& l, const std::string& digest, Communicator& group) {
    observer_.on_layer_start(l);
    LayerRecord r = quantize_layer(
        {backend_, group, params_.search}, weight_view(model_, *l.info), l.settings,
        [&](const IterationStats& s) { observer_.on_iteration(l, s); }, l.column_scales,
        l.row_weights);
    r.module_type = l.plan.type;
    r.settings_digest = l.settings_digest;  // planned_digest: the weighting included
    r.source_digest = digest;
    return r;
  }

 private:
  const QuantizeParams& params_;
  const io::SafetensorsModel& model_;
  Backend& backend_;
  const io::LayerCheckpoints& checkpoints_;
  QuantizeObserver& observer_;
};

// A layer every rank runs together. Rank 0 alone decides whether its checkpoint is
// reused and tells the others, so the group never splits over a part file.
void run_shared_layer(const PlannedLayer& l, World& world, Communicator& group,
                      LayerProducer& producer, std::optional<LayerSink>& sink) {
  const std::string digest = producer.source_digest(l);
  std::optional<LayerRecord> done;
  if (world.rank() == 0) done = producer.reuse(l, digest);
  std::byte reused{done ? uint8_t{1} : uint8_t{0}};
  world.everyone().broadcast(std::span(&reused, 1), 0);
  if (reused == std::byte{1}) {
    if (sink) sink->accept(std::move(*done), true);
    return;
  }
  LayerRecord layer = producer.compute(l, digest, group);
  if (sink) sink->accept(std::move(layer), false);
}

// Every output against every input and every other output, by device and inode, before
// anything is written (core/file_checks.h).
void check_paths(const QuantizeParams& p, const io::SafetensorsModel& model) {
  std::vector<NamedPath> inputs = {{"the config", p.config}, {"the model", p.model}};
  for (const io::SafetensorsFile& f : model.shards())
    inputs.push_back({"the model file", f.path()});
  if (model.indexed()) {
    inputs.push_back(
        {"the model index", (std::filesystem::path(p.model) / "model.safetensors.index.json")});
  }
  std::vector<NamedPath> outputs;
  if (!p.dry_run) outputs.push_back({"--out", p.out});
  outputs.push_back({"--report", p.report});
  check_output_clashes(outputs, inputs);
}

void write_kept_tensors(const io::SafetensorsModel& model, const std::vector<std::string>& keep,
                        io::ArchiveWriter& writer) {
  for (const std::string& name : keep) {
    const io::TensorInfo& t = *model.find(name);
    const auto bytes = model.bytes(t);
    const auto* first = reinterpret_cast<const uint8_t*>(bytes.data());
    writer.write_kept(
        {t.name, t.dtype, t.shape, std::vector<uint8_t>(first, first + bytes.size())});
  }
}

}  // namespace

RunSummary quantize_model(const QuantizeParams& params, World& world, QuantizeObserver& observer) {
  validate(params);
  // Every collective from here on fails (and the job ends) after this long without a
  // rank that answers, instead of hanging on a lost host.
  world.set_comm_timeout(params.comm_timeout);
  const bool root = world.rank() == 0;
  const auto start = std::chrono::steady_clock::now();
  const io::SafetensorsModel model = io::SafetensorsModel::open(params.model);
  check_paths(params, model);
  const io::QuantConfig config = io::load_config(params.config);
  check_storable_names(model);
  ModelPlan plan = plan_model(params, model, config);
  if (root) {
    for (const std::string& w : plan.warnings)
      observer.on_warning(w);
  }
  RunSummary summary;
  summary.dry_run = params.dry_run;
  summary.kept = plan.keep.size();
  summary.totals = plan.totals;
  summary.ranks = world.size();

  if (params.dry_run) {  // header only: no tensor data is read
    if (!root) return summary;
    if (!params.report.empty()) {
      io::write_report(params.report, params.model, params.config, true, plan.rows, plan.totals);
    }
    summary.rows = std::move(plan.rows);
    return summary;
  }
  for (const std::string& w : fit_centroid_dtypes(plan, model)) {
    if (root) observer.on_warning(w);
  }
  summary.totals = plan.totals;
  const Schedule schedule = schedule_layers(plan.costs(), world.size(), params.shard_threshold);
  const std::vector<size_t>& mine = schedule.by_rank[static_cast<size_t>(world.rank())];
  // Bad values in this rank's layers fail the job before any clustering or output: the
  // one check of the weights' values (check_weight_values).
  for (size_t i : schedule.shared)
    check_weight_values(weight_view(model, *plan.layers[i].info));
  for (size_t i : mine)
    check_weight_values(weight_view(model, *plan.layers[i].info));

  const int threads =
      threads_per_rank(params.threads, world.ranks_on_this_node(), omp_get_num_procs(),
                       std::getenv("OMP_NUM_THREADS") != nullptr);
  if (threads > 0) omp_set_num_threads(threads);
  const std::unique_ptr<Backend> backend = make_backend(params.device, world, threads);
  summary.backend = backend->name();
  // Claimed before anything is removed or written: a second run on the same --out stops
  // here and leaves this one's temporary archive and checkpoints alone.
  std::optional<OutputLock> lock;
  if (root) lock.emplace(params.out);
  io::LayerCheckpoints checkpoints(params.out);
  if (root && !params.resume) checkpoints.remove_all();
  // A killed run's temporary archive (the checkpoints hold what it finished).
  if (root) remove_stale_temporaries(params.out);
  world.everyone().barrier();  // nobody reads stale checkpoints root is removing
  observer.on_start(plan, world.size() == 1);
  LayerProducer producer(params, model, *backend, checkpoints, observer);
  std::optional<io::ArchiveWriter> writer;
  std::optional<LayerSink> sink;
  if (root) {
    writer.emplace(params.out, archive_header(params, config, model));
    sink.emplace(plan.rows, *writer, checkpoints, observer);
  }
  LayerChannel& channel = world.layers();
  if (!schedule.shared.empty()) {
    // NCCL starts only for a run that shares layers (it costs a GPU context's setup).
    const SharedLayerGroup shared =
        make_shared_layer_group(params.device, world, *backend, params.comm_timeout);
    if (root) observer.on_setup(shared.description);
    for (size_t i : schedule.shared)
      run_shared_layer(plan.layers[i], world, *shared.group, producer, sink);
  }
  for (size_t i : mine) {
    const PlannedLayer& l = plan.layers[i];
    const std::string digest = producer.source_digest(l);
    std::optional<LayerRecord> layer = producer.reuse(l, digest);
    const bool resumed = layer.has_value();
    if (!layer) layer = producer.compute(l, digest, single_process_group());
    if (root) {
      sink->accept(std::move(*layer), resumed);
      while (auto arrived = channel.poll())
        sink->accept(std::move(arrived->layer), arrived->resumed);
    } else {
      channel.send(*layer, resumed);
    }
  }
  if (!root) {
    channel.flush();
    return summary;
  }
  while (sink->finished() < plan.layers.size()) {
    FinishedLayer arrived = channel.wait();
    sink->accept(std::move(arrived.layer), arrived.resumed);
  }
  write_kept_tensors(model, plan.keep, *writer);
  writer->write_source(io::source_layout(model, params.model),
                       io::read_source_files(plan.source_files));
  writer->finalize();
  checkpoints.remove_finished();
  summary.totals.archive_file_bytes = std::filesystem::file_size(params.out);
  summary.totals.seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (!params.report.empty()) {
    io::write_report(params.report, params.model, params.config, false, plan.rows, summary.totals);
  }
  summary.rows = std::move(plan.rows);
  return summary;
}

}  // namespace pgkm
