#include "io/archive.h"

#include <unistd.h>

#include <cctype>
#include <filesystem>
#include <span>
#include <string_view>
#include <system_error>
#include <utility>

#include "core/atomic_file.h"
#include "core/digest.h"
#include "core/errors.h"
#include "io/archive_schema.h"
#include "io/archive_source.h"
#include "io/hdf5_util.h"

namespace pgkm::io {
namespace {

// Root attribute `format` of a checkpoint part file (a one-layer archive).
constexpr const char* kPartFormat = "pgkm-layer-part";
// Bytes of the tensor name kept readable in a part's file name.
constexpr size_t kReadablePartChars = 64;

bool all_of(std::string_view s, std::string_view allowed) {
  return s.find_first_not_of(allowed) == std::string_view::npos;
}

// Whether `name` is a part file name (LayerCheckpoints::part_file_name) or the temporary
// name of one (core/atomic_file.h: "<final>.tmp-" + 8 hex digits).
bool is_part_file_name(std::string_view name) {
  constexpr std::string_view kHex = "0123456789abcdef";
  if (const size_t tmp = name.rfind(".tmp-"); tmp != std::string_view::npos) {
    const std::string_view suffix = name.substr(tmp + 5);
    if (suffix.size() != 8 || !all_of(suffix, kHex)) return false;
    name = name.substr(0, tmp);
  }
  if (!name.ends_with(".h5") || name.size() < 20) return false;
  name.remove_suffix(3);
  const std::string_view hex = name.substr(name.size() - 16);
  const std::string_view readable = name.substr(0, name.size() - 17);
  return name[name.size() - 17] == '-' && all_of(hex, kHex) &&
         readable.size() <= kReadablePartChars &&
         all_of(readable, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-");
}

// Writes a part file `file` (open, at `tmp_path`): root format attributes and
// /layers/<layer>, then closes it.
void write_part_file(const std::string& tmp_path, H5File file, const LayerRecord& layer) {
  const H5Site site(tmp_path, false);
  write_attr_string(site, file.get(), "format", kPartFormat);
  write_attr_int(site, file.get(), "format_version", kArchiveFormatVersion);
  H5Group layers = create_group(site, file.get(), "layers");
  write_layer_group(site, layers.get(), layer);
  layers.reset();
  site.check_ok(file.close(), "H5Fclose", "the file");
}

// Reads the layer `tensor` from a part file, validating it like an archive layer.
LayerRecord read_part_file(const std::string& path, const std::string& tensor) {
  const H5Site site(path, true);
  if (!is_hdf5_file(path)) site.fail("not an HDF5 file");
  H5File file = open_file(site, false);
  const std::string format = read_attr_string(site, file.get(), "format", "root group");
  if (format != kPartFormat) {
    site.fail(str_cat("attribute 'format' is '", format, "', expected '", kPartFormat, "'"));
  }
  // Parts of an older pgkm (version 1, unpacked codes) are still read and reused.
  const int64_t version = read_attr_int(site, file.get(), "format_version", "root group");
  if (version < 1 || version > kArchiveFormatVersion) {
    site.fail(str_cat("format_version ", version, ", expected 1..", kArchiveFormatVersion));
  }
  H5Group layers = open_group(site, file.get(), "layers");
  const std::string link = escape_name(tensor);
  if (!link_exists(site, layers.get(), link)) site.fail(str_cat("no layer '", tensor, "'"));
  return read_layer_group(site, layers.get(), link, version);
}

}  // namespace

ArchiveWriter::ArchiveWriter(const std::string& final_path, const ArchiveHeader& header)
    : final_path_(final_path), header_(header) {
  out_ = create_atomic_hdf5(final_path, file_);
  const H5Site site(out_->temp_path(), false);
  try {
    layers_ = create_group(site, file_.get(), "layers");
    tensors_ = create_group(site, file_.get(), "tensors");
  } catch (...) {
    discard();
    throw;
  }
}

ArchiveWriter::~ArchiveWriter() {
  if (!finalized_) discard();
}

void ArchiveWriter::discard() noexcept {
  layers_.reset();
  tensors_.reset();
  file_.reset();
  out_.reset();  // removes the temporary file
}

void ArchiveWriter::write_layer(const LayerRecord& layer) {
  PGKM_ASSERT(file_.valid(), "write_layer after finalize");
  validate_layer(H5Site(final_path_, false), layer);
  const H5Site site(out_->temp_path(), false);
  const std::string link = escape_name(layer.name);
  PGKM_EXPECTS(!link_exists(site, layers_.get(), link), final_path_, "layer '", layer.name,
               "' is written twice");
  try {
    write_layer_group(site, layers_.get(), layer);
  } catch (...) {
    // Drop the partial group so that the archive stays consistent.
    H5Ldelete(layers_.get(), link.c_str(), H5P_DEFAULT);
    throw;
  }
}

void ArchiveWriter::write_kept(const KeptTensor& tensor) {
  PGKM_ASSERT(file_.valid(), "write_kept after finalize");
  validate_kept(H5Site(final_path_, false), tensor);
  const H5Site site(out_->temp_path(), false);
  const std::string link = escape_name(tensor.name);
  PGKM_EXPECTS(!link_exists(site, tensors_.get(), link), final_path_, "tensor '", tensor.name,
               "' is written twice");
  try {
    write_kept_dataset(site, tensors_.get(), tensor);
  } catch (...) {
    H5Ldelete(tensors_.get(), link.c_str(), H5P_DEFAULT);  // fails harmlessly if never created
    throw;
  }
}

void ArchiveWriter::write_source(const SourceLayout& layout, const std::vector<SourceFile>& files) {
  PGKM_ASSERT(file_.valid(), "write_source after finalize");
  const H5Site site(out_->temp_path(), false);
  PGKM_EXPECTS(!link_exists(site, file_.get(), "source"), final_path_,
               "the source is written twice");
  write_source_group(site, file_.get(), {layout, files});
}

void ArchiveWriter::finalize() {
  PGKM_ASSERT(file_.valid() && !finalized_, "finalize called twice");
  const H5Site site(out_->temp_path(), false);
  write_header_attrs(site, file_.get(), header_);
  layers_.reset();
  tensors_.reset();
  site.check_ok(file_.close(), "H5Fclose", "the file");
  out_->commit();
  finalized_ = true;
}

LayerCheckpoints::LayerCheckpoints(std::string final_path)
    : dir_(std::move(final_path) + ".parts") {}

std::string LayerCheckpoints::part_file_name(const std::string& tensor) {
  std::string readable = tensor.substr(0, kReadablePartChars);
  for (char& c : readable) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' && c != '-') c = '_';
  }
  const auto bytes = std::as_bytes(std::span(tensor.data(), tensor.size()));
  return str_cat(readable, "-", digest_hex(digest64(bytes)), ".h5");
}

std::string LayerCheckpoints::part_path(const std::string& tensor) const {
  return dir_ + "/" + part_file_name(tensor);
}

std::vector<std::string> LayerCheckpoints::own_entries(bool strict) const {
  namespace fs = std::filesystem;
  std::vector<std::string> own;
  std::error_code ec;
  const fs::file_status dir_status = fs::symlink_status(dir_, ec);
  if (!fs::exists(dir_status)) return own;
  if (!fs::is_directory(dir_status)) {
    if (!strict) return own;
    throw InputError(dir_,
                     "is not a directory of pgkm checkpoints (it is a file or a link); "
                     "pgkm does not remove it: move it away or choose another --out");
  }
  for (const auto& entry : fs::directory_iterator(dir_, ec)) {
    const std::string name = entry.path().filename().string();
    std::error_code type_ec;
    const bool regular = entry.is_regular_file(type_ec) && !entry.is_symlink(type_ec);
    if (regular && is_part_file_name(name)) {
      own.push_back(entry.path().string());
    } else if (strict) {
      throw InputError(entry.path().string(),
                       "is not a checkpoint of pgkm; pgkm removes only its own files from " + dir_ +
                           ": move it away or choose another --out");
    }
  }
  if (ec) throw SystemError(str_cat("list directory ", dir_, ": ", ec.message()));
  return own;
}

void LayerCheckpoints::save(const LayerRecord& layer) {
  validate_layer(H5Site(dir_, false), layer);
  std::error_code ec;
  const bool created = std::filesystem::create_directories(dir_, ec);
  if (ec) {
    throw SystemError(str_cat(dir_, ": ", errno_text(ec.value()), " (creating the directory)"));
  }
  if (created) fsync_directory(parent_directory(dir_));
  H5File file;
  const std::unique_ptr<AtomicFile> part = create_atomic_hdf5(part_path(layer.name), file);
  write_part_file(part->temp_path(), std::move(file), layer);
  part->commit();
}

std::optional<LayerRecord> LayerCheckpoints::load_matching(const std::string& tensor,
                                                           const std::string& source_digest,
                                                           const std::string& settings_digest,
                                                           std::string* why_ignored) const {
  const std::string path = part_path(tensor);
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return std::nullopt;
  try {
    LayerRecord layer = read_part_file(path, tensor);
    if (layer.source_digest != source_digest || layer.settings_digest != settings_digest) {
      return std::nullopt;
    }
    return layer;
  } catch (const Error& e) {
    if (why_ignored != nullptr) *why_ignored = e.what();
    return std::nullopt;
  }
}

void LayerCheckpoints::remove_all() {
  // Every entry is checked before the first is removed: a refusal changes nothing.
  for (const std::string& path : own_entries(true)) {
    std::error_code ec;
    std::filesystem::remove(path, ec);
    if (ec) throw SystemError(str_cat("remove ", path, ": ", ec.message()));
  }
}

void LayerCheckpoints::remove_finished() noexcept {
  try {
    for (const std::string& path : own_entries(false)) {
      std::error_code ec;
      std::filesystem::remove(path, ec);
    }
    ::rmdir(dir_.c_str());  // fails, harmlessly, when foreign files remain
  } catch (...) {
    // The archive is complete; leftover checkpoints are only clutter.
  }
}

ArchiveReader::ArchiveReader(std::string path, H5File file)
    : path_(std::move(path)), file_(std::move(file)) {}

ArchiveReader ArchiveReader::open(const std::string& path) {
  const H5Site site(path, true);
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) site.fail("no such file");
  if (!is_hdf5_file(path)) site.fail("not an HDF5 file (H5Fis_hdf5 rejects it)");
  ArchiveReader reader(path, open_file(site, false));
  reader.header_ = read_header_attrs(site, reader.file_.get(), reader.format_version_);
  for (const char* group : {"layers", "tensors"}) {
    if (!link_exists(site, reader.file_.get(), group)) {
      site.fail(str_cat("group '/", group, "' is missing"));
    }
  }
  return reader;
}

std::vector<std::string> ArchiveReader::layer_names() const {
  const H5Site site(path_, true);
  H5Group layers = open_group(site, file_.get(), "layers");
  return real_names(site, layers.get(), "layer");
}

LayerRecord ArchiveReader::read_layer(const std::string& name) const {
  const H5Site site(path_, true);
  H5Group layers = open_group(site, file_.get(), "layers");
  const std::string link = escape_name(name);
  if (!link_exists(site, layers.get(), link)) site.fail(str_cat("no layer named '", name, "'"));
  return read_layer_group(site, layers.get(), link, format_version_);
}

std::vector<std::string> ArchiveReader::kept_names() const {
  const H5Site site(path_, true);
  H5Group tensors = open_group(site, file_.get(), "tensors");
  return real_names(site, tensors.get(), "tensor");
}

KeptTensor ArchiveReader::read_kept(const std::string& name) const {
  const H5Site site(path_, true);
  H5Group tensors = open_group(site, file_.get(), "tensors");
  const std::string link = escape_name(name);
  if (!link_exists(site, tensors.get(), link)) site.fail(str_cat("no tensor named '", name, "'"));
  return read_kept_dataset(site, tensors.get(), link, format_version_);
}

std::optional<SourceLayout> ArchiveReader::read_source_layout() const {
  const H5Site site(path_, true);
  std::optional<ModelSource> source = read_source_group(site, file_.get(), format_version_);
  if (!source) return std::nullopt;
  return std::move(source->layout);
}

std::vector<SourceFile> ArchiveReader::read_source_files() const {
  const H5Site site(path_, true);
  std::optional<ModelSource> source = read_source_group(site, file_.get(), format_version_);
  return source ? std::move(source->files) : std::vector<SourceFile>{};
}

}  // namespace pgkm::io
