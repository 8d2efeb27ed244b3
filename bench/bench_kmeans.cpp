// bench_kmeans: times pgkm's k-means driver on one layer's points, for the peer
// comparisons in bench/peers (fairseq's EM, faiss.Kmeans).
//
//   bench_kmeans --data FILE.f32 --n N --dim B --k K --algo ipq|pg-base|pg
//                --iters I --threads T --seed S [--repeats R] [--layer NAME]
//                [--centroids-out FILE.f32] [--search brute|pruned]
//                [--isa avx512|avx2|scalar]
//
// FILE.f32 holds raw little-endian float32 [N, B] (row-major, the PQ layout's
// subvectors). run_kmeans runs R times on the CPU backend with T threads; one JSON
// object goes to stdout:
//   seconds_per_iteration          median over repeats of
//                                  sum_i(assign_i + resolve_i + update_i) / iterations
//   seconds_per_iteration_repeats  the per-repeat values
//   seconds_total_*                run_kmeans wall time (median, per repeat)
//   objective                      final sum of squared errors over all N points
//   empty_clusters, resolution_rounds, stopped_early, stop_reason, iterations_run, ...
// The result (codes, objective) does not depend on the repeat: the seed is fixed.
// --centroids-out writes the last repeat's centroids, raw float32 [K, B].
// --isa caps the CPU kernels (default avx512: the widest the CPU has), so one machine
// can time the AVX2 path too; the "backend" field names the kernels that ran.
#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <fstream>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/digest.h"
#include "engine/kmeans.h"
#include "engine/layer_record.h"
#include "io/record_json.h"
#include "kernels/backend.h"

namespace {

[[noreturn]] void usage(const std::string& msg) {
  std::cerr << "bench_kmeans: " << msg << "\n"
            << "usage: bench_kmeans --data FILE.f32 --n N --dim B --k K --algo ipq|pg-base|pg\n"
            << "                    --iters I --threads T --seed S [--repeats R] [--layer NAME]\n"
            << "                    [--centroids-out FILE.f32] [--search brute|pruned]\n"
            << "                    [--isa avx512|avx2|scalar]\n";
  std::exit(2);
}

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t m = v.size() / 2;
  return v.size() % 2 ? v[m] : 0.5 * (v[m - 1] + v[m]);
}

int64_t to_int(const std::string& key, const std::string& s) {
  try {
    size_t pos = 0;
    const long long v = std::stoll(s, &pos);
    if (pos != s.size()) throw std::invalid_argument(s);
    return v;
  } catch (const std::exception&) {
    usage(key + " needs an integer, got '" + s + "'");
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::map<std::string, std::string> args;
  for (int i = 1; i < argc; ++i) {
    std::string key = argv[i];
    if (key == "-h" || key == "--help") usage("help");
    if (key.rfind("--", 0) != 0) usage("unexpected argument '" + key + "'");
    std::string value;
    if (const size_t eq = key.find('='); eq != std::string::npos) {
      value = key.substr(eq + 1);
      key = key.substr(0, eq);
    } else {
      if (i + 1 >= argc) usage(key + " needs a value");
      value = argv[++i];
    }
    args[key.substr(2)] = value;
  }
  static const char* kKnown[] = {"data",          "n",       "dim",  "k",       "algo",
                                 "iters",         "threads", "seed", "repeats", "layer",
                                 "centroids-out", "search",  "isa"};
  for (const auto& [key, value] : args) {
    if (std::find(std::begin(kKnown), std::end(kKnown), key) == std::end(kKnown))
      usage("unknown option --" + key);
  }
  for (const char* required : {"data", "n", "dim", "k", "algo", "iters", "threads", "seed"}) {
    if (!args.count(required)) usage(std::string("missing --") + required);
  }

  const std::string path = args["data"];
  const int64_t n = to_int("--n", args["n"]);
  const int64_t dim = to_int("--dim", args["dim"]);
  const int64_t k = to_int("--k", args["k"]);
  const int64_t iters = to_int("--iters", args["iters"]);
  const int64_t threads = to_int("--threads", args["threads"]);
  const int64_t seed = to_int("--seed", args["seed"]);
  const int64_t repeats = args.count("repeats") ? to_int("--repeats", args["repeats"]) : 1;
  const std::string layer = args.count("layer") ? args["layer"] : "bench";
  if (n < 1 || dim < 1 || dim > pgkm::kMaxBlockSize || k < 1 || iters < 0 || threads < 0 ||
      seed < 0 || repeats < 1)
    usage(
        "out-of-range value (need n>=1, 1<=dim<=32, k>=1, iters>=0, threads>=0, seed>=0, "
        "repeats>=1)");

  try {
    pgkm::KMeansParams params;
    params.algorithm = pgkm::parse_algorithm(args["algo"]);
    params.n_centroids = k;
    params.iterations = static_cast<int>(iters);
    params.seed = static_cast<uint64_t>(seed);
    const std::string search_name = args.count("search") ? args["search"] : "pruned";
    const auto parsed_search = pgkm::parse_search_mode(search_name);
    if (!parsed_search) usage("--search must be brute or pruned, not '" + search_name + "'");
    const pgkm::SearchMode search = *parsed_search;

    std::vector<float> data(static_cast<size_t>(n * dim));
    {
      std::ifstream in(path, std::ios::binary | std::ios::ate);
      if (!in) usage("cannot open " + path);
      const auto bytes = static_cast<int64_t>(in.tellg());
      if (bytes != n * dim * static_cast<int64_t>(sizeof(float)))
        usage(path + " has " + std::to_string(bytes) +
              " bytes, expected n*dim*4 = " + std::to_string(n * dim * 4));
      in.seekg(0);
      in.read(reinterpret_cast<char*>(data.data()), bytes);
      if (!in) usage("cannot read " + path);
    }
    // The host is little-endian x86-64 (pgkm's only CPU target); no byte swapping.

    // The set-up phases (deduplication, DWC, pre-assignment) run on OpenMP's default
    // team, as in `pgkm quantize`: --threads sizes it too, or a "1 thread" run would
    // still set up on every core.
    if (threads > 0) omp_set_num_threads(static_cast<int>(threads));
    const std::string isa_name = args.count("isa") ? args["isa"] : "avx512";
    pgkm::CpuIsa isa = pgkm::CpuIsa::kAvx512;
    if (isa_name == "avx2") {
      isa = pgkm::CpuIsa::kAvx2;
    } else if (isa_name == "scalar") {
      isa = pgkm::CpuIsa::kScalar;
    } else if (isa_name != "avx512") {
      usage("--isa must be avx512, avx2 or scalar, not '" + isa_name + "'");
    }
    auto backend =
        pgkm::make_cpu_backend({.threads = static_cast<int>(threads), .widest_isa = isa});
    const pgkm::EngineContext context(*backend, search);

    std::vector<double> per_iter, totals, assign_s, resolve_s, update_s;
    pgkm::KMeansResult last;
    for (int64_t r = 0; r < repeats; ++r) {
      pgkm::KMeansResult res =
          pgkm::run_kmeans(context, params, layer, data, static_cast<int>(dim));
      double a = 0, rs = 0, u = 0;
      for (const auto& it : res.per_iteration) {
        a += it.seconds_assign;
        rs += it.seconds_resolve;
        u += it.seconds_update;
      }
      const int runs = std::max(1, res.iterations_run);
      per_iter.push_back((a + rs + u) / runs);
      assign_s.push_back(a / runs);
      resolve_s.push_back(rs / runs);
      update_s.push_back(u / runs);
      totals.push_back(res.seconds_total);
      last = std::move(res);
    }

    if (args.count("centroids-out")) {
      std::ofstream cout_file(args["centroids-out"], std::ios::binary | std::ios::trunc);
      cout_file.write(reinterpret_cast<const char*>(last.centroids.data()),
                      static_cast<std::streamsize>(last.centroids.size() * sizeof(float)));
      if (!cout_file) usage("cannot write " + args["centroids-out"]);
    }

    nlohmann::json out;
    out["data"] = path;
    out["n"] = n;
    out["dim"] = dim;
    out["k"] = k;
    out["algo"] = pgkm::algorithm_name(params.algorithm);
    out["iters"] = iters;
    out["threads"] = threads;
    out["seed"] = seed;
    out["repeats"] = repeats;
    out["backend"] = backend->name();
    out["seconds_per_iteration"] = median(per_iter);
    out["seconds_per_iteration_repeats"] = per_iter;
    out["seconds_assign_per_iteration"] = median(assign_s);
    out["seconds_resolve_per_iteration"] = median(resolve_s);
    out["seconds_update_per_iteration"] = median(update_s);
    out["seconds_total"] = median(totals);
    out["seconds_total_repeats"] = totals;
    out["objective"] = last.objective;
    out["objective_per_point"] = last.objective / static_cast<double>(n);
    out["empty_clusters"] = last.empty_clusters;
    out["initial_empty"] = last.initial_empty;
    out["resolution_rounds"] = last.resolution_rounds;
    out["iterations_run"] = last.iterations_run;
    out["stopped_early"] = last.stopped_early;
    out["stop_reason"] = last.stop_reason;
    out["distinct_vectors"] = last.distinct_vectors;
    out["clustered_points"] = last.clustered_points;
    nlohmann::json iters_json = nlohmann::json::array();
    for (const auto& it : last.per_iteration) {
      iters_json.push_back({{"iteration", it.iteration},
                            {"objective", it.objective},
                            {"empty_before", it.empty_before},
                            {"empty_after", it.empty_after},
                            {"resolution_rounds", it.resolution_rounds}});
    }
    out["per_iteration"] = iters_json;
    out["search"] = pgkm::search_mode_name(search);
    // Every statistic the report carries (phase seconds, fraction of centroids scored),
    // from the layer record's field table, and digests to compare codes and codebooks
    // between --search brute and --search pruned.
    pgkm::LayerRecord record;
    record.stats = last;
    out["layer_stats"] = pgkm::io::layer_json(record, pgkm::kReport);
    out["codes_digest"] = pgkm::digest_hex(pgkm::digest64(std::as_bytes(std::span(last.codes))));
    out["centroids_digest"] =
        pgkm::digest_hex(pgkm::digest64(std::as_bytes(std::span(last.centroids))));
    std::cout << out.dump() << std::endl;
  } catch (const std::exception& e) {
    std::cerr << "bench_kmeans: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
