// Schema v2's "/source" group (docs/ARCHIVE.md): the source model's safetensors layout
// and its non-weight files (io/model_source.h), so that a model folder can be written
// from the archive alone.
//
//   /source                 group
//     layout                uint8 [n]: the layout as UTF-8 JSON (io/model_source.h)
//     files/<escaped path>  uint8 [size]: one file, byte for byte; attribute `name`
//                           holds its relative path ("1_Pooling/config.json")
//
// Internal to io/; use io/archive.h.
#pragma once

#include <hdf5.h>

#include <functional>
#include <optional>
#include <string>

#include "io/hdf5_util.h"
#include "io/model_source.h"

namespace pgkm::io {

// What the archive records about its source.
struct ModelSource {
  SourceLayout layout;
  std::vector<SourceFile> files;  // sorted by path
};

// Writes /source into `root` (which must not have one).
void write_source_group(const H5Site& site, hid_t root, const ModelSource& source);
// Reads /source, checking the layout and every path (io/model_source.h); nullopt when the
// archive has no /source group (schema v1).
std::optional<ModelSource> read_source_group(const H5Site& site, hid_t root,
                                             int64_t format_version);

// Reads one stored object for `pgkm inspect --verify`: `read` throws pgkm::Error when the
// object is damaged; the callee records it under `object` and carries on.
using ObjectCheck =
    std::function<void(const std::string& object, const std::function<void()>& read)>;
// Checks /source object by object (the layout, then each file) through `check`, so that
// one damaged file does not hide the next; nothing when the archive has no /source.
void verify_source_group(const H5Site& site, hid_t root, int64_t format_version,
                         const ObjectCheck& check);

}  // namespace pgkm::io
