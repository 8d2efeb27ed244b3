// Checksums of what an archive (or a checkpoint part) stores, schema v3 (docs/ARCHIVE.md).
//
// Each layer group, kept tensor and source file carries an attribute `checksum`: 16 hex
// digits of digest64 (core/digest.h) over a canonical encoding of its content as stored
// (see the .cpp). A stored digest was chosen over HDF5's Fletcher32 filter because it
// covers the attributes too (shape, K, statistics, the digests resume relies on), not
// only the raw chunks; it needs no chunked layout (Fletcher32 does, and cannot apply to
// empty or scalar datasets, which kept tensors can be); and the value is independent of
// how HDF5 lays the file out, so one function checks an archive, a part and a record.
//
// Internal to io/.
#pragma once

#include <cstdint>
#include <string>

#include "engine/layer_record.h"
#include "io/archive.h"
#include "io/hdf5_util.h"

namespace pgkm::io {

inline constexpr const char* kChecksumAttr = "checksum";
// The first schema version whose objects carry `checksum` (older files are read unchecked).
inline constexpr int64_t kFirstChecksumVersion = 3;

// The checksum of a layer as the archive stores it: its kArchive attributes, its
// centroids rounded to the stored dtype and its codes.
std::string layer_checksum(const LayerRecord& layer);
// The checksum of a kept tensor (name, dtype, shape, bytes).
std::string kept_checksum(const KeptTensor& tensor);
// The checksum of a source file (relative path, bytes).
std::string source_file_checksum(const std::string& path, std::span<const uint8_t> bytes);

// Writes attribute `checksum` = `value` on `obj`.
void write_checksum(const H5Site& site, hid_t obj, const std::string& value);
// For format_version >= kFirstChecksumVersion: fails unless `obj` has a `checksum`
// attribute equal to `computed` ("<where>: checksum mismatch: stored X, content gives Y;
// the file is damaged"). Older versions are not checked.
void verify_checksum(const H5Site& site, hid_t obj, const std::string& where,
                     const std::string& computed, int64_t format_version);

}  // namespace pgkm::io
