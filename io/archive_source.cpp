#include "io/archive_source.h"

#include <string>

#include "core/errors.h"
#include "io/archive_checksum.h"
#include "io/archive_schema.h"

namespace pgkm::io {
namespace {

constexpr const char* kSourceGroup = "source";

void write_bytes(const H5Site& site, hid_t parent, const std::string& name,
                 std::span<const uint8_t> bytes, const std::string& checksum_name) {
  write_dataset(site, parent, name, H5T_STD_U8LE, H5T_NATIVE_UINT8, {bytes.size()}, bytes.data());
  H5Dataset d(site.check_id(H5Dopen2(parent, name.c_str(), H5P_DEFAULT), "H5Dopen2", name));
  write_checksum(site, d.get(), source_file_checksum(checksum_name, bytes));
}

// Reads a byte dataset and checks its checksum (computed from `checksum_name` and the
// bytes; archives before schema v3 have none).
std::vector<uint8_t> read_bytes(const H5Site& site, hid_t parent, const std::string& name,
                                const std::string& what, const std::string& checksum_name,
                                int64_t format_version) {
  DatasetInfo info = open_dataset(site, parent, name, what);
  if (info.dims.size() != 1 || info.type_class != H5T_INTEGER || info.type_size != 1) {
    site.fail(str_cat(what, " is not a 1-D dataset of bytes"));
  }
  std::vector<uint8_t> out(info.n_elements);
  if (!out.empty()) read_dataset(site, info, H5T_NATIVE_UINT8, out.data(), what);
  verify_checksum(site, info.dataset.get(), what, source_file_checksum(checksum_name, out),
                  format_version);
  return out;
}

}  // namespace

void write_source_group(const H5Site& site, hid_t root, const ModelSource& source) {
  H5Group group = create_group(site, root, kSourceGroup);
  const std::string layout = layout_json(source.layout);
  write_bytes(site, group.get(), "layout",
              std::span(reinterpret_cast<const uint8_t*>(layout.data()), layout.size()),
              "/source/layout");
  H5Group files = create_group(site, group.get(), "files");
  for (const SourceFile& f : source.files) {
    check_relative_path(f.path, site.path());
    const std::string link = escape_name(f.path);
    write_bytes(site, files.get(), link, f.bytes, f.path);
    H5Dataset d(site.check_id(H5Dopen2(files.get(), link.c_str(), H5P_DEFAULT), "H5Dopen2",
                              str_cat("source file '", f.path, "'")));
    write_attr_string(site, d.get(), "name", f.path);
  }
}

std::optional<ModelSource> read_source_group(const H5Site& site, hid_t root,
                                             int64_t format_version) {
  if (!link_exists(site, root, kSourceGroup)) return std::nullopt;
  H5Group group = open_group(site, root, kSourceGroup);
  ModelSource source;
  const std::vector<uint8_t> layout =
      read_bytes(site, group.get(), "layout", "/source/layout", "/source/layout", format_version);
  source.layout = parse_layout_json(std::string(layout.begin(), layout.end()), site.path());
  H5Group files = open_group(site, group.get(), "files");
  for (const std::string& link : child_names(site, files.get(), "/source/files")) {
    const std::string what = str_cat("source file '", link, "'");
    SourceFile f;
    {
      H5Object obj(site.check_id(H5Oopen(files.get(), link.c_str(), H5P_DEFAULT), "H5Oopen", what));
      f.path = read_attr_string(site, obj.get(), "name", what);
    }
    check_relative_path(f.path, site.path());
    if (escape_name(f.path) != link) {
      site.fail(str_cat("source file '", f.path, "' is stored under the wrong name '", link, "'"));
    }
    f.bytes = read_bytes(site, files.get(), link, what, f.path, format_version);
    source.files.push_back(std::move(f));
  }
  return source;
}

void verify_source_group(const H5Site& site, hid_t root, int64_t format_version,
                         const ObjectCheck& check) {
  if (!link_exists(site, root, kSourceGroup)) return;
  H5Group group = open_group(site, root, kSourceGroup);
  check("/source/layout", [&] {
    const std::vector<uint8_t> layout =
        read_bytes(site, group.get(), "layout", "/source/layout", "/source/layout", format_version);
    parse_layout_json(std::string(layout.begin(), layout.end()), site.path());
  });
  H5Group files = open_group(site, group.get(), "files");
  for (const std::string& link : child_names(site, files.get(), "/source/files")) {
    const std::string what = str_cat("source file '", link, "'");
    check(what, [&] {
      std::string path;
      {
        H5Object obj(
            site.check_id(H5Oopen(files.get(), link.c_str(), H5P_DEFAULT), "H5Oopen", what));
        path = read_attr_string(site, obj.get(), "name", what);
      }
      check_relative_path(path, site.path());
      if (escape_name(path) != link) {
        site.fail(str_cat("source file '", path, "' is stored under the wrong name '", link, "'"));
      }
      read_bytes(site, files.get(), link, what, path, format_version);
    });
  }
}

}  // namespace pgkm::io
