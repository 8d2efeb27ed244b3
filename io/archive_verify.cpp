// ArchiveReader::verify (`pgkm inspect --verify`): every stored object read back through
// the same functions the readers use, one at a time, so that a damaged object is reported
// and the next one is still checked.
#include <exception>
#include <functional>
#include <string>

#include "core/errors.h"
#include "io/archive.h"
#include "io/archive_schema.h"
#include "io/archive_source.h"

namespace pgkm::io {
namespace {

// The real name of a group's child for the report; its link name (the escaped form) when
// the `name` attribute itself cannot be read.
std::string display_name(const H5Site& site, hid_t group, const std::string& link,
                         const std::string& what) {
  try {
    const std::string child = str_cat(what, " '", link, "'");
    H5Object obj(site.check_id(H5Oopen(group, link.c_str(), H5P_DEFAULT), "H5Oopen", child));
    return read_attr_string(site, obj.get(), "name", child);
  } catch (const Error&) {
    return link;
  }
}

}  // namespace

ArchiveVerification ArchiveReader::verify() const {
  const H5Site site(path_, true);
  ArchiveVerification result;
  const ObjectCheck check = [&](const std::string& object, const std::function<void()>& read) {
    ++result.objects;
    try {
      read();
    } catch (const Error& e) {
      result.damaged.push_back({object, e.what()});
    } catch (const std::bad_alloc&) {
      // A damaged size can ask for more memory than there is.
      result.damaged.push_back({object, "out of memory reading it (a damaged size?)"});
    }
  };
  H5Group layers = open_group(site, file_.get(), "layers");
  for (const std::string& link : child_names(site, layers.get(), "/layers")) {
    const std::string object =
        str_cat("layer '", display_name(site, layers.get(), link, "layer"), "'");
    check(object, [&] { read_layer_group(site, layers.get(), link, format_version_); });
  }
  H5Group tensors = open_group(site, file_.get(), "tensors");
  for (const std::string& link : child_names(site, tensors.get(), "/tensors")) {
    const std::string object =
        str_cat("tensor '", display_name(site, tensors.get(), link, "tensor"), "'");
    check(object, [&] { read_kept_dataset(site, tensors.get(), link, format_version_); });
  }
  verify_source_group(site, file_.get(), format_version_, check);
  return result;
}

}  // namespace pgkm::io
