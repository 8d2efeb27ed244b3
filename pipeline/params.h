// What a whole-model quantization run is asked to do (pgkm quantize's options, typed).
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

#include "engine/context.h"
#include "engine/layer_record.h"

namespace pgkm {

// Where the k-means runs.
enum class Device {
  kCpu,
  kCuda,
  kAuto,  // CUDA when this build has it and a GPU is visible, else the CPU
};
const char* device_name(Device d);  // "cpu", "cuda", "auto"
std::optional<Device> parse_device(std::string_view name);

struct QuantizeParams {
  std::string model;   // .safetensors file or directory (sharded with an index)
  std::string config;  // quantization config (fairseq YAML or native)
  std::string out;     // archive path; may be empty for a dry run
  std::string report;  // JSON report path, empty for none
  // Settings for layers whose config rule names none: algorithm, iterations, seed,
  // centroid dtype and the algorithms' parameters. Block size and K always come from
  // the config.
  LayerSettings defaults;
  int threads = 0;  // worker threads per rank; 0: the cores of the node shared by its ranks
  Device device = Device::kAuto;
  // How assignment finds the nearest centroids; both give the same archive, bit for bit.
  SearchMode search = SearchMode::kPruned;
  bool dry_run = false;  // print the size plan without reading tensor data
  bool resume = false;   // reuse finished layers of an interrupted run
  bool strict = false;   // config warnings are errors
  // A layer costing more than this many fair shares (total cost / ranks) is split over
  // every rank instead of given to one.
  double shard_threshold = 1.0;
  // The most any wait for other ranks may take before the job is ended: every MPI
  // collective (dist/mpi_communicator.h), every NCCL collective and the NCCL
  // communicator's start (dist/nccl_communicator.h). > 0.
  std::chrono::seconds comm_timeout{300};
  // Importance weighting (docs/CONFIG.md, "Importance"): a safetensors file of calibration
  // statistics (launch/calibrate.py); empty for none. Each Linear's column c is scaled by
  // s_c = (h_c / mean h)^(importance_exponent / 2) before clustering.
  std::string importance;
  double importance_exponent = 0.5;  // alpha, finite and in [0, 4]
  // A quantized layer the importance file does not name: an error, or a plain layer.
  bool importance_missing_plain = false;
  // beta: a quantized embedding's row r (token r) counts w_r = 1 + round(beta * rows * f_r)
  // times in its k-means, f_r the token's calibration frequency (the file's counts over
  // their sum): the calibration tokens weigh beta times as much as all rows counted once.
  // 0 leaves embeddings unweighted. Finite, in [0, kMaxTokenWeight].
  double importance_token_weight = 0;
};

inline constexpr double kMaxTokenWeight = 1000;

// Throws InputError naming the option for values no run can use (no --out without
// --dry-run, negative counts, a shard threshold that is not a finite number >= 0).
void validate(const QuantizeParams& params);

}  // namespace pgkm
