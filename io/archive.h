// The pgkm model archive: one HDF5 file holding every quantized layer (codebook,
// codes, statistics), every tensor kept as it was and what is needed to write the source
// model's folder again (io/model_source.h). Schema v2 (v1 is still read) and the
// crash-safety design are documented in docs/ARCHIVE.md.
//
//   ArchiveWriter     writes a temporary file next to `<out>` (core/atomic_file.h) and
//                     renames it to `<out>` on finalize().
//   LayerCheckpoints  one small HDF5 file per finished layer in `<out>.parts/`, so a
//                     killed run resumes without redoing finished layers.
//   ArchiveReader     opens and validates an archive (every value read is checked).
//
// Errors: bad archives throw InputError(path, message naming the layer / dataset /
// attribute and the value); failed writes throw SystemError.
// The serial HDF5 library is not thread-safe: use these classes from one thread at a time.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/atomic_file.h"
#include "engine/layer_record.h"
#include "io/hdf5_handles.h"
#include "io/model_source.h"

namespace pgkm::io {

// The schema version this tool writes and the newest it reads (1: codes as one unsigned
// integer each; 2: codes packed at ceil(log2 K) bits, and the /source group; 3: a
// `checksum` attribute on every layer, kept tensor and source dataset, io/archive_checksum.h;
// 4: an importance-weighted layer's float32 `column_scales` dataset, docs/ARCHIVE.md).
inline constexpr int64_t kArchiveFormatVersion = 4;

// Root attributes: what produced the archive.
struct ArchiveHeader {
  std::string tool_version;       // pgkm version, e.g. "0.1.0"
  std::string config_text;        // the quantization config file, verbatim
  std::string config_format;      // "fairseq-yaml" or "native"
  std::string algorithm;          // default algorithm: "pg", "pg-base" or "ipq"
  uint64_t seed = 0;              // global seed
  int64_t iterations = 0;         // default k-means iterations
  std::string settings_json;      // every run setting, as a JSON object
  std::string source_files_json;  // JSON object: source file -> digest (attribute source_files)
  // ISO 8601 UTC time, e.g. "2024-05-01T12:00:00Z"; finalize() fills it in when empty.
  std::string created_utc;
};

// A quantized layer is stored as its LayerRecord (engine/layer_record.h): the kArchive
// fields become attributes of its group, and centroids [n_centroids, block_size]
// (float16 or float32 as settings.centroid_dtype says), codes (numel / block_size codes in
// fairseq order, packed at ceil(log2 K) bits) and counts [n_centroids] its datasets. Settings that
// are not kArchive fields (seed, the algorithms' parameters) are recorded only in settings_digest
// and the header: a record read back has them at their defaults.

// A tensor stored unchanged (biases, norms, layers not quantized).
struct KeptTensor {
  std::string name;            // tensor name
  std::string dtype;           // safetensors spelling: "F32", "F16", "BF16", "I64", "BOOL", ...
  std::vector<int64_t> shape;  // empty for a 0-d tensor
  std::vector<uint8_t> bytes;  // numel * dtype size, little-endian, row-major
};

// Writes an archive to a temporary file next to final_path (core/atomic_file.h) and
// renames it into place on finalize().
// Until then final_path is never touched; destroying an unfinalized writer deletes
// the tmp file, so no half archive is ever left behind. Not thread-safe.
class ArchiveWriter {
 public:
  // Creates (truncates) the tmp file. Throws SystemError if it cannot be created.
  ArchiveWriter(const std::string& final_path, const ArchiveHeader& header);
  ArchiveWriter(const ArchiveWriter&) = delete;
  ArchiveWriter& operator=(const ArchiveWriter&) = delete;
  ~ArchiveWriter();

  // Adds /layers/<escaped name>. Throws InputError for an inconsistent layer (sizes,
  // codes >= K) or a name written before.
  void write_layer(const LayerRecord& layer);
  // Adds /tensors/<escaped name>. Throws InputError if bytes.size() is not
  // numel * dtype size, the dtype is unknown or the name was written before.
  void write_kept(const KeptTensor& tensor);
  // Adds /source: the source's safetensors layout and its non-weight files
  // (io/model_source.h). At most once; throws InputError for an unsafe file path.
  void write_source(const SourceLayout& layout, const std::vector<SourceFile>& files);
  // Writes the root attributes, closes and fsyncs the file and renames it to
  // final_path atomically. Call once; no writes afterwards.
  void finalize();

  const std::string& final_path() const { return final_path_; }

 private:
  // Closes every handle and deletes the tmp file; never throws.
  void discard() noexcept;

  std::string final_path_;
  std::unique_ptr<AtomicFile> out_;  // the file being written; reset once discarded
  ArchiveHeader header_;
  H5File file_;
  H5Group layers_;
  H5Group tensors_;
  bool finalized_ = false;
};

// Finished layers saved one file each under `final_path + ".parts/"`, written to a
// tmp name and renamed, so they survive a kill -9 (HDF5 files themselves are not
// crash-consistent). A resumed run loads the layers whose digests still match.
class LayerCheckpoints {
 public:
  explicit LayerCheckpoints(std::string final_path);

  // The sidecar directory, final_path + ".parts".
  const std::string& dir() const { return dir_; }
  // Saves `layer` durably (tmp file, fsync, rename); replaces an older save.
  void save(const LayerRecord& layer);
  // The saved layer `tensor`, or nullopt if there is none, or it has other digests, or
  // it is incomplete or unreadable (for those two, `why_ignored`, when given, gets the
  // reason: the caller decides how to tell the user).
  std::optional<LayerRecord> load_matching(const std::string& tensor,
                                           const std::string& source_digest,
                                           const std::string& settings_digest,
                                           std::string* why_ignored = nullptr) const;
  // Before a run that does not resume: removes every part file and temporary file pgkm
  // made in the sidecar directory, and nothing else. Throws InputError naming the first
  // entry that is not pgkm's (a file of the user's, a subdirectory, a link) before
  // removing anything, and when the sidecar path is not a directory.
  void remove_all();
  // After a successful finalize: removes pgkm's files as remove_all does, then the
  // directory when it is empty; never refuses (foreign files stay where they are).
  void remove_finished() noexcept;

  // The file name of `tensor`'s part: the name with every byte outside [A-Za-z0-9._-]
  // made '_' and cut to 64 bytes (readable in a listing), '-', 16 hex digits of digest64
  // of the whole name (every byte, NUL bytes included) and ".h5": unique per name and at
  // most 84 bytes, within every file system's 255.
  static std::string part_file_name(const std::string& tensor);
  std::string part_path(const std::string& tensor) const;

 private:
  // The entries of the sidecar directory that pgkm made; throws for a foreign one when
  // `strict`, else leaves it out.
  std::vector<std::string> own_entries(bool strict) const;

  std::string dir_;
};

// One object `ArchiveReader::verify` could not read back intact.
struct ArchiveDamage {
  std::string object;   // "layer 'enc.0.weight'", "tensor 'bias'", "/source/layout", ...
  std::string message;  // why: the reader's error (checksum mismatch, code >= K, ...)
};

struct ArchiveVerification {
  size_t objects = 0;                  // objects checked, damaged ones included
  std::vector<ArchiveDamage> damaged;  // in archive order
};

// A validated, read-only view of an archive.
class ArchiveReader {
 public:
  // Opens `path` and reads the root attributes. Throws InputError if it is not an
  // HDF5 file, not a pgkm archive, of a newer format_version, or a root attribute is
  // missing or of the wrong type.
  static ArchiveReader open(const std::string& path);

  const std::string& path() const { return path_; }
  int64_t format_version() const { return format_version_; }
  const ArchiveHeader& header() const { return header_; }

  // Real tensor names of the quantized layers, in the order they were written.
  std::vector<std::string> layer_names() const;
  // Reads and validates one layer: attributes present and typed, centroids [K, b],
  // codes [numel / b] each < K, counts [K], complete == 1.
  LayerRecord read_layer(const std::string& name) const;
  // Real names of the kept tensors, in the order they were written.
  std::vector<std::string> kept_names() const;
  // Reads one kept tensor byte-exact; checks its size is numel * dtype size.
  KeptTensor read_kept(const std::string& name) const;
  // The source's layout and non-weight files (checked: io/model_source.h), or nullopt
  // when the archive records none (schema v1).
  std::optional<SourceLayout> read_source_layout() const;
  std::vector<SourceFile> read_source_files() const;  // empty when none are recorded
  // Reads every layer group, kept tensor and /source dataset with every check the
  // readers above make (checksums, codes < K, finite centroids, sizes) and carries on past
  // damage, so the result names every damaged object. Throws only when the archive's
  // structure itself (the /layers or /tensors listing) cannot be read (io/archive_verify.cpp).
  ArchiveVerification verify() const;

 private:
  ArchiveReader(std::string path, H5File file);

  std::string path_;
  H5File file_;
  int64_t format_version_ = 0;
  ArchiveHeader header_;
};

}  // namespace pgkm::io
