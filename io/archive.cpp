#include "io/archive.h"

#include <filesystem>
#include <iostream>
#include <system_error>
#include <utility>

#include "core/atomic_file.h"
#include "core/errors.h"
#include "io/archive_schema.h"
#include "io/hdf5_util.h"

namespace pgkm::io {
namespace {

// Root attribute `format` of a checkpoint part file (a one-layer archive).
constexpr const char* kPartFormat = "pgkm-layer-part";

// Writes a part file at `tmp_path`: root format attributes and /layers/<layer>.
void write_part_file(const std::string& tmp_path, const LayerRecord& layer) {
  const H5Site site(tmp_path, false);
  H5File file = create_file(site);
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
  const int64_t version = read_attr_int(site, file.get(), "format_version", "root group");
  if (version != kArchiveFormatVersion) {
    site.fail(str_cat("format_version ", version, ", expected ", kArchiveFormatVersion));
  }
  H5Group layers = open_group(site, file.get(), "layers");
  const std::string link = escape_name(tensor);
  if (!link_exists(site, layers.get(), link)) site.fail(str_cat("no layer '", tensor, "'"));
  return read_layer_group(site, layers.get(), link);
}

}  // namespace

ArchiveWriter::ArchiveWriter(const std::string& final_path, const ArchiveHeader& header)
    : final_path_(final_path), out_(std::make_unique<AtomicFile>(final_path)), header_(header) {
  const H5Site site(out_->temp_path(), false);
  try {
    file_ = create_file(site);
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

std::string LayerCheckpoints::part_path(const std::string& tensor) const {
  return dir_ + "/" + escape_name(tensor) + ".h5";
}

void LayerCheckpoints::save(const LayerRecord& layer) {
  validate_layer(H5Site(dir_, false), layer);
  std::error_code ec;
  const bool created = std::filesystem::create_directories(dir_, ec);
  if (ec) throw SystemError(str_cat("create directory ", dir_, ": ", ec.message()));
  if (created) fsync_directory(parent_directory(dir_));
  AtomicFile part(part_path(layer.name));
  write_part_file(part.temp_path(), layer);
  part.commit();
}

std::optional<LayerRecord> LayerCheckpoints::load_matching(
    const std::string& tensor, const std::string& source_digest,
    const std::string& settings_digest) const {
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
    std::cerr << "pgkm: warning: ignoring the checkpoint of layer '" << tensor
              << "' (it will be redone): " << e.what() << "\n";
    return std::nullopt;
  }
}

void LayerCheckpoints::remove_all() {
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
  if (ec) throw SystemError(str_cat("remove ", dir_, ": ", ec.message()));
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
  return read_layer_group(site, layers.get(), link);
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
  return read_kept_dataset(site, tensors.get(), link);
}

}  // namespace pgkm::io
