// The pgkm subcommands. Each returns normally on success and throws pgkm::Error with a
// message for the user otherwise; main() turns that into one line and an exit code.
#pragma once

#include <cstdint>
#include <string>

namespace pgkm {

struct QuantizeOptions {
  std::string model;             // .safetensors file or directory
  std::string config;            // quantization config (fairseq YAML or native)
  std::string out;               // archive path
  std::string algorithm = "pg";  // default for layers whose rule names none
  int iterations = 15;           // default for layers whose rule names none
  uint64_t seed = 0;
  int threads = 0;  // 0: all hardware threads
  std::string centroid_dtype = "f16";
  // cpu, cuda, or auto (CUDA when this build has it and a GPU is visible). Each rank uses
  // GPU (rank within its node) modulo the GPUs it sees.
  std::string device = "auto";
  std::string report;  // JSON report path, empty for none
  bool dry_run = false;
  bool resume = false;
  bool strict = false;  // config warnings are errors
  // A layer costing more than this many fair shares (total cost / ranks) is split over
  // every rank instead of given to one.
  double shard_threshold = 1.0;
};

class World;
void run_quantize(const QuantizeOptions& options, World& world);
void run_inspect(const std::string& archive);
void run_reconstruct(const std::string& archive, const std::string& out);

}  // namespace pgkm
