// Schema v2 of the pgkm archive (docs/ARCHIVE.md; v1 is still read): how a header, a layer and a
// kept tensor map to HDF5 attributes and datasets, and the checks applied when reading. Shared by
// the archive writer/reader and the per-layer checkpoint files.
//
// Internal to io/; use io/archive.h.
#pragma once

#include <hdf5.h>

#include <string>

#include "io/archive.h"
#include "io/hdf5_util.h"

namespace pgkm::io {

// Link name for a tensor: '%' and '/' become %25 and %2F, and a name made only of
// dots gets its first dot escaped (%2E), since HDF5 reserves those. Injective; the
// real name is always stored in the attribute `name`. Throws InputError for "".
std::string escape_name(const std::string& name);

// Throws InputError(site.path(), "layer 'x': ...") unless the layer is consistent:
// known source dtype, positive shape, b >= 1 dividing the row length, K >= 1,
// centroids [K * b] finite, codes [numel / b] each < K, counts [K] each < 2^32.
void validate_layer(const H5Site& site, const LayerRecord& layer);

// Writes the root attributes (format, format_version, header fields).
void write_header_attrs(const H5Site& site, hid_t root, const ArchiveHeader& header);
// Reads the root attributes after checking format == "pgkm" and that format_version
// is at most kArchiveFormatVersion; returns the version in `format_version`.
ArchiveHeader read_header_attrs(const H5Site& site, hid_t root, int64_t& format_version);

// Writes group <layers>/<escaped name> (which must not exist) with its datasets, codes
// packed (schema v2); `complete` goes last. The layer must have passed validate_layer.
void write_layer_group(const H5Site& site, hid_t layers, const LayerRecord& layer);
// Reads and validates group <layers>/<link> of a file of `format_version` (1: codes as
// one unsigned integer each; 2: packed): complete == 1 first, then every attribute and
// dataset (validate_layer and the dataset shapes and types).
LayerRecord read_layer_group(const H5Site& site, hid_t layers, const std::string& link,
                             int64_t format_version);

// Throws InputError(site.path(), "tensor 'x': ...") for an empty name, an unknown
// dtype or a byte count other than numel * dtype size.
void validate_kept(const H5Site& site, const KeptTensor& tensor);
// Writes dataset <tensors>/<escaped name> (which must not exist) holding the bytes
// unchanged. The tensor must have passed validate_kept.
void write_kept_dataset(const H5Site& site, hid_t tensors, const KeptTensor& tensor);
// Reads dataset <tensors>/<link>, checking dtype, shape and size.
KeptTensor read_kept_dataset(const H5Site& site, hid_t tensors, const std::string& link,
                             int64_t format_version);

// The `name` attribute of every child of a group, in stored order.
std::vector<std::string> real_names(const H5Site& site, hid_t group, const std::string& what);

}  // namespace pgkm::io
