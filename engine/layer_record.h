// One quantized layer as pgkm carries it everywhere: what it is (name, shape, source
// dtype), how it was quantized (LayerSettings), what the run measured (LayerStats) and
// its codebook and codes. The archive, the JSON report, the wire between ranks, the
// settings digest and the archive header all take their fields from the one table
// below (for_each_layer_field), so adding a field is one line there.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "engine/dtype.h"
#include "engine/kmeans.h"
#include "engine/layer_stats.h"
#include "engine/layout.h"

namespace pgkm {

// How centroids are stored in the archive.
enum class CentroidDtype { kF16, kF32 };
const char* centroid_dtype_name(CentroidDtype t);  // "f16", "f32"
std::optional<CentroidDtype> parse_centroid_dtype(std::string_view name);

// Everything that decides a layer's codebook and codes.
struct LayerSettings {
  KMeansParams kmeans;  // algorithm, K, iterations, seed and the algorithms' parameters
  int block_size = 8;   // b
  CentroidDtype centroid_dtype = CentroidDtype::kF16;
};

struct LayerRecord {
  std::string name;            // tensor name, e.g. "encoder.layer.0.attention.self.query.weight"
  std::vector<int64_t> shape;  // the source tensor's shape
  DType source_dtype = DType::F32;
  ModuleType module_type = ModuleType::kLinear;
  LayerSettings settings;
  std::string source_digest;    // digest of the source tensor's bytes
  std::string settings_digest;  // settings_digest(settings)
  LayerStats stats;
  std::vector<float> centroids;  // [K, b] row-major
  std::vector<uint32_t> codes;   // [numel / b] in fairseq order, each < K
  std::vector<uint64_t> counts;  // [K] subvectors per code
  // Importance weighting (docs/CONFIG.md, "Importance"): empty for a plain layer, else
  // one scale s_c > 0 per column of the (rows, row_length) weight. The k-means ran on
  // W[:, c] * s_c, so the centroids live in that scaled space and the dequantized weight
  // is centroid / s_c (engine/layout.h reconstruct_weight). Stored as the archive's
  // "column_scales" dataset (schema v4), so not in the field table below.
  std::vector<float> column_scales;
  bool importance_weighted() const { return !column_scales.empty(); }
};

// Where a field goes. A field's `name` is its HDF5 attribute, JSON key and wire name.
enum FieldUse : unsigned {
  kArchive = 1u << 0,  // an attribute of the layer's group in the archive
  kReport = 1u << 1,   // a key of the layer's object in the JSON report
  kWire = 1u << 2,     // sent from the rank that ran the layer to rank 0
  kDigest = 1u << 3,   // part of the settings digest (resume reuses a layer only on a match)
  kHeader = 1u << 4,   // a run-wide default recorded in the archive header's settings_json
};

struct FieldInfo {
  const char* name;
  unsigned uses;
  // kStatistic fields exist only after clustering (null in a dry-run report).
  bool statistic = false;
  // kDigest: consecutive fields with one label form one "|label=v1,v2" part of the text.
  const char* digest_label = nullptr;
  // kReport: the JSON key when it is not `name`.
  const char* report_name = nullptr;
};

// Visits every field of a layer record, `visit(const FieldInfo&, member&)`, in a fixed
// order: the archive's attribute order, with settings in the digest's order. Members are
// std::string, int, int64_t, uint64_t, float, double, bool, DType, ModuleType,
// Algorithm, CentroidDtype, std::vector<int64_t> and std::vector<IterationStats>.
// `Record` is LayerRecord or const LayerRecord.
template <typename Record, typename Visit>
void for_each_layer_field(Record& r, Visit&& visit) {
  auto& s = r.settings;
  auto& k = r.settings.kmeans;
  auto& t = r.stats;
  constexpr unsigned kAll = kArchive | kReport | kWire;
  constexpr unsigned kSetting = kWire | kDigest | kHeader;
  // clang-format off
  visit(FieldInfo{"name", kAll}, r.name);
  visit(FieldInfo{"shape", kAll}, r.shape);
  visit(FieldInfo{"source_dtype", kArchive | kWire}, r.source_dtype);
  visit(FieldInfo{"module_type", kArchive | kWire}, r.module_type);
  visit(FieldInfo{"algorithm", kAll | kDigest | kHeader, false, ""}, k.algorithm);
  visit(FieldInfo{"source_digest", kArchive | kWire}, r.source_digest);
  visit(FieldInfo{"settings_digest", kArchive | kWire}, r.settings_digest);
  visit(FieldInfo{"iteration_stats", kAll, true, nullptr, "per_iteration"}, t.per_iteration);
  visit(FieldInfo{"block_size", kAll | kDigest, false, "b="}, s.block_size);
  visit(FieldInfo{"n_centroids", kAll | kDigest, false, "k="}, k.n_centroids);
  visit(FieldInfo{"iterations", kAll, true}, t.iterations_run);
  visit(FieldInfo{"empty_clusters", kAll, true}, t.empty_clusters);
  visit(FieldInfo{"initial_empty", kArchive | kWire, true}, t.initial_empty);
  visit(FieldInfo{"resolution_rounds", kAll, true}, t.resolution_rounds);
  visit(FieldInfo{"distinct_vectors", kArchive | kWire, true}, t.distinct_vectors);
  visit(FieldInfo{"clustered_points", kArchive | kWire, true}, t.clustered_points);
  visit(FieldInfo{"objective", kAll, true}, t.objective);
  visit(FieldInfo{"plain_objective", kReport | kWire, true}, t.plain_objective);
  visit(FieldInfo{"seconds", kAll, true}, t.seconds_total);
  visit(FieldInfo{"stopped_early", kArchive | kWire, true}, t.stopped_early);
  visit(FieldInfo{"stop_reason", kWire, true}, t.stop_reason);
  visit(FieldInfo{"seconds_resolve", kReport | kWire, true}, t.seconds_resolve);
  visit(FieldInfo{"seconds_load", kReport | kWire, true}, t.seconds_load);
  visit(FieldInfo{"seconds_dedup", kReport | kWire, true}, t.seconds_dedup);
  visit(FieldInfo{"seconds_consolidation", kReport | kWire, true}, t.seconds_consolidation);
  visit(FieldInfo{"seconds_preassign", kReport | kWire, true}, t.seconds_preassign);
  visit(FieldInfo{"seconds_assign", kReport | kWire, true}, t.seconds_assign);
  visit(FieldInfo{"seconds_update", kReport | kWire, true}, t.seconds_update);
  visit(FieldInfo{"seconds_write", kReport | kWire, true}, t.seconds_write);
  visit(FieldInfo{"scored_fraction", kReport | kWire, true}, t.scored_fraction);
  // The iterations asked for (the archive's "iterations" is the number run).
  visit(FieldInfo{"iterations", kSetting, false, "iters="}, k.iterations);
  visit(FieldInfo{"seed", kSetting, false, "seed="}, k.seed);
  visit(FieldInfo{"ipq_eps", kSetting, false, "ipq="}, k.ipq.eps);
  visit(FieldInfo{"ipq_max_tries", kSetting, false, "ipq="}, k.ipq.max_tries);
  visit(FieldInfo{"pg_max_rounds", kSetting, false, "pg="}, k.pg.max_rounds);
  visit(FieldInfo{"dwc_c_sd", kSetting, false, "dwc="}, k.dwc.c_sd);
  visit(FieldInfo{"dwc_c_mc", kSetting, false, "dwc="}, k.dwc.c_mc);
  visit(FieldInfo{"dwc_initial_epsilon_scale", kSetting, false, "dwc="}, k.dwc.initial_epsilon_scale);
  visit(FieldInfo{"dwc_count_weighted", kSetting, false, "dwc="}, k.dwc.count_weighted);
  visit(FieldInfo{"dwc_max_epsilon_updates", kSetting, false, "dwc="}, k.dwc.max_epsilon_updates);
  visit(FieldInfo{"centroid_dtype", kSetting, false, "centroids="}, s.centroid_dtype);
  // clang-format on
}

// The same for one iteration's statistics (the archive's iteration_stats JSON, the
// report's per_iteration array, the wire).
template <typename Stats, typename Visit>
void for_each_iteration_field(Stats& s, Visit&& visit) {
  constexpr unsigned kAll = kArchive | kReport | kWire;
  visit(FieldInfo{"iteration", kWire, true}, s.iteration);
  visit(FieldInfo{"objective", kAll, true}, s.objective);
  visit(FieldInfo{"empty_before", kAll, true}, s.empty_before);
  visit(FieldInfo{"empty_after", kAll, true}, s.empty_after);
  visit(FieldInfo{"resolution_rounds", kAll, true}, s.resolution_rounds);
  visit(FieldInfo{"seconds_assign", kAll, true}, s.seconds_assign);
  visit(FieldInfo{"seconds_resolve", kAll, true}, s.seconds_resolve);
  visit(FieldInfo{"seconds_update", kAll, true}, s.seconds_update);
  visit(FieldInfo{"scored_fraction", kReport | kWire, true}, s.scored_fraction);
}

// Text names of the enum members of the table, and their inverse (nullopt: unknown).
inline const char* field_text(Algorithm a) {
  return algorithm_name(a);
}
inline const char* field_text(DType t) {
  return dtype_name(t);
}
inline const char* field_text(ModuleType t) {
  return module_type_name(t);
}
inline const char* field_text(CentroidDtype t) {
  return centroid_dtype_name(t);
}
bool parse_field_text(std::string_view text, Algorithm& out);
bool parse_field_text(std::string_view text, DType& out);
bool parse_field_text(std::string_view text, ModuleType& out);
bool parse_field_text(std::string_view text, CentroidDtype& out);

// Digest of every kDigest field, as 16 hex digits: a resumed layer is reused only when
// its settings digest matches. The text hashed is versioned and frozen
// ("pgkm-layer-settings-v1|pg|b=4|k=256|iters=15|seed=0|ipq=1e-06,100|pg=15|..."), so
// checkpoints of an older pgkm with the same settings still match.
std::string settings_digest(const LayerSettings& settings);

}  // namespace pgkm
