// The pgkm command line: quantize, inspect, reconstruct, export.
// Exit codes: 0 success; 1 an error, reported as one line on stderr; 2 bad usage.
#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <exception>
#include <map>

#include "core/errors.h"
#include "launch/commands.h"

namespace {

// The option's text to the enum: anything but the listed names is bad usage, and both the
// help and the error show the names ("pg|pg-base|ipq"), not the enum's numbers.
template <typename Enum>
CLI::Validator choices(std::initializer_list<Enum> values, const char* (*name)(Enum)) {
  std::map<std::string, Enum> map;
  std::string listed;
  for (Enum v : values) {
    map.emplace(name(v), v);
    listed += (listed.empty() ? "" : "|") + std::string(name(v));
  }
  return CLI::Validator(
      [map, listed](std::string& text) -> std::string {
        const auto found = map.find(text);
        if (found == map.end()) return "'" + text + "' is not one of " + listed;
        text = std::to_string(static_cast<int>(found->second));
        return {};
      },
      listed);
}

void add_quantize(CLI::App& app, pgkm::QuantizeParams& p, pgkm::World& world) {
  using pgkm::Algorithm;
  using pgkm::CentroidDtype;
  using pgkm::Device;
  CLI::App* q = app.add_subcommand("quantize", "Quantize a model into an HDF5 archive");
  q->add_option("model", p.model, "Model: .safetensors file or directory (sharded with index)")
      ->required();
  q->add_option("--config", p.config, "Quantization config (fairseq YAML or native)")->required();
  q->add_option("--out", p.out, "Output archive (.h5)");
  q->add_option("--algo", p.defaults.kmeans.algorithm, "Default algorithm: pg, pg-base or ipq")
      ->transform(
          choices({Algorithm::kPg, Algorithm::kPgBase, Algorithm::kIpq}, pgkm::algorithm_name));
  q->add_option("--iters", p.defaults.kmeans.iterations,
                "Default k-means iterations (fairseq: 15)");
  // CLI11 reads "-1" and 2^64 as 2^64 - 1; a seed is a decimal number below 2^64.
  q->add_option("--seed", p.defaults.kmeans.seed, "Global seed (combined with each layer's name)")
      ->check(CLI::Validator(
          [](std::string& text) {
            const bool digits = !text.empty() && text.size() <= 20 &&
                                text.find_first_not_of("0123456789") == std::string::npos;
            if (digits && (text.size() < 20 || text <= "18446744073709551615"))
              return std::string();
            return "--seed " + text + " is not a whole number in 0..18446744073709551615";
          },
          "SEED"));
  q->add_option("--threads", p.threads, "Worker threads (0: all)");
  q->add_option("--centroid-dtype", p.defaults.centroid_dtype, "Stored centroid type: f16 or f32")
      ->transform(choices({CentroidDtype::kF16, CentroidDtype::kF32}, pgkm::centroid_dtype_name));
  q->add_option("--report", p.report, "Write a JSON report here");
  q->add_option("--device", p.device, "cpu, cuda, or auto (CUDA when a GPU is visible)")
      ->transform(choices({Device::kCpu, Device::kCuda, Device::kAuto}, pgkm::device_name));
  q->add_option("--search", p.search,
                "Nearest-centroid search: pruned (exact, skips centroids that cannot win) or "
                "brute (scores every centroid); the same archive either way")
      ->transform(
          choices({pgkm::SearchMode::kPruned, pgkm::SearchMode::kBrute}, pgkm::search_mode_name));
  q->add_flag("--dry-run", p.dry_run, "Print the size plan without clustering");
  q->add_flag("--resume", p.resume, "Reuse finished layers of an interrupted run");
  q->add_flag("--strict", p.strict, "Treat config warnings as errors");
  q->add_option("--shard-threshold", p.shard_threshold,
                "Split a layer over every rank when its cost exceeds this many fair shares")
      ->check(CLI::NonNegativeNumber);
  q->add_option_function<int64_t>(
       "--comm-timeout", [&p](int64_t s) { p.comm_timeout = std::chrono::seconds(s); },
       "Seconds one collective (MPI or NCCL) may wait for the other ranks before the job "
       "ends, naming them (default 300)")
      ->check(CLI::PositiveNumber);
  q->add_option("--importance", p.importance,
                "Calibration statistics (launch/calibrate.py): weight each Linear's error by "
                "its inputs' mean square (embeddings: see --importance-token-weight)");
  q->add_option("--importance-exponent", p.importance_exponent,
                "alpha in s_c = (h_c / mean h)^(alpha/2) (default 0.5)")
      ->check(CLI::Range(0.0, 4.0));
  q->add_option("--importance-token-weight", p.importance_token_weight,
                "beta: the embedding's row r counts 1 + round(beta * rows * token frequency) "
                "times (default 0: unweighted)")
      ->check(CLI::Range(0.0, pgkm::kMaxTokenWeight));
  q->add_option_function<std::string>(
       "--importance-missing",
       [&p](const std::string& v) { p.importance_missing_plain = v == "plain"; },
       "A quantized layer the importance file lacks: error (default) or plain")
      ->check(CLI::IsMember({"error", "plain"}));
  q->callback([&p, &world] { pgkm::run_quantize(p, world); });
}

}  // namespace

// One line on stderr naming the rank when there are several; ends every rank of an MPI
// job so that none waits forever for the one that failed.
int fail(pgkm::World& world, const std::string& message) {
  std::fflush(stdout);
  const std::string where = world.where();
  std::fprintf(stderr, "pgkm: error: %s%s%s\n", where.c_str(), where.empty() ? "" : ": ",
               message.c_str());
  std::fflush(stderr);
  if (world.size() > 1) world.abort(1);
  return 1;
}

int main(int argc, char** argv) {
  const std::unique_ptr<pgkm::World> world = pgkm::make_world(&argc, &argv);
  CLI::App app{"pgkm: product quantization of neural networks with Partitioning-Guided k-means"};
  app.require_subcommand(1);
  app.set_version_flag("--version", PGKM_VERSION);
  // Global, before or after the subcommand (fallthrough); its callback runs before any
  // subcommand's, so the first HDF5 failure is already printed in full.
  app.fallthrough();
  app.add_flag_callback(
      "--verbose", [] { pgkm::set_verbose(true); },
      "Print libraries' whole diagnostics on failure (HDF5's error stack)");
  pgkm::QuantizeParams quantize;
  add_quantize(app, quantize, *world);
  std::string archive, out;
  CLI::App* inspect = app.add_subcommand("inspect", "Print the layers and totals of an archive");
  inspect->add_option("archive", archive, "Archive (.h5)")->required();
  bool verify = false;
  inspect->add_flag("--verify", verify,
                    "Read every stored object back, list each damaged one; exit 1 on any");
  // Reading an archive is one process's work: under mpirun only rank 0 does it, so ranks
  // neither print the table N times nor race to write the same reconstruction.
  inspect->callback([&] {
    if (world->rank() != 0) return;
    if (verify)
      pgkm::run_verify(archive);
    else
      pgkm::run_inspect(archive);
  });
  CLI::App* reconstruct =
      app.add_subcommand("reconstruct", "Write dequantized weights as safetensors");
  reconstruct->add_option("archive", archive, "Archive (.h5)")->required();
  reconstruct
      ->add_option("--out", out,
                   "Output: a model folder (DIR/), or one file when it ends in .safetensors")
      ->required();
  reconstruct->callback([&] {
    if (world->rank() == 0) pgkm::run_reconstruct(archive, out);
  });
  pgkm::ExportFormat format = pgkm::ExportFormat::kAqlm;
  CLI::App* exporter =
      app.add_subcommand("export", "Write a model folder a runtime executes without dense weights");
  exporter->add_option("archive", archive, "Archive (.h5)")->required();
  exporter->add_option("--format", format, "Output format: aqlm (transformers + aqlm)")
      ->required()
      ->transform(choices({pgkm::ExportFormat::kAqlm}, pgkm::export_format_name));
  exporter->add_option("--out", out, "Output model folder")->required();
  exporter->callback([&] {
    if (world->rank() == 0) pgkm::run_export(archive, format, out);
  });
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // app.exit prints the message (or --help / --version); CLI11's own codes vary by
    // error kind, ours is one: 2 for any bad usage.
    return app.exit(e) == 0 ? 0 : 2;
  } catch (const pgkm::UsageError& e) {
    fail(*world, e.what());
    return 2;  // like any bad usage
  } catch (const pgkm::Error& e) {
    return fail(*world, e.what());
  } catch (const std::bad_alloc&) {
    return fail(*world, "out of memory");
  } catch (const std::exception& e) {
    return fail(*world, e.what());
  }
  return 0;
}
