#include "io/archive_schema.h"

#include <array>
#include <chrono>
#include <cmath>
#include <ctime>
#include <limits>
#include <span>
#include <type_traits>
#include <utility>

#include "core/errors.h"
#include "core/text.h"
#include "engine/dtype.h"
#include "engine/size_plan.h"
#include "io/archive_checksum.h"
#include "io/code_pack.h"
#include "io/record_json.h"
#include "io/safetensors.h"

namespace pgkm::io {
namespace {

constexpr const char* kFormatName = "pgkm";
constexpr const char* kColumnScales = "column_scales";

std::string dims_text(const std::vector<hsize_t>& dims) {
  return shape_text(dims);
}

// Number of elements of `shape`; fails on a negative (or, unless allow_zero, zero)
// dimension or an overflow.
int64_t checked_numel(const std::string& path, const std::string& what,
                      std::span<const int64_t> shape, bool allow_zero) {
  int64_t numel = 1;
  for (int64_t d : shape) {
    PGKM_EXPECTS(d > 0 || (allow_zero && d == 0), path, what, ": shape ", shape_text(shape),
                 " has an invalid dimension ", d);
    PGKM_EXPECTS(d == 0 || numel <= std::numeric_limits<int64_t>::max() / d, path, what, ": shape ",
                 shape_text(shape), " has too many elements");
    numel *= d;
  }
  return numel;
}

// The HDF5 type storing a kept tensor's elements unchanged. BF16 and F8 have no HDF5
// counterpart and are stored as their bits (the `dtype` attribute says what they are).
H5Datatype kept_file_type(const H5Site& site, const std::string& dtype) {
  if (dtype == "F16") return make_f16_type(site);
  const std::pair<const char*, hid_t> table[] = {
      {"BOOL", H5T_STD_U8LE},    {"U8", H5T_STD_U8LE},      {"I8", H5T_STD_I8LE},
      {"F8_E5M2", H5T_STD_U8LE}, {"F8_E4M3", H5T_STD_U8LE}, {"I16", H5T_STD_I16LE},
      {"U16", H5T_STD_U16LE},    {"BF16", H5T_STD_U16LE},   {"I32", H5T_STD_I32LE},
      {"U32", H5T_STD_U32LE},    {"F32", H5T_IEEE_F32LE},   {"I64", H5T_STD_I64LE},
      {"U64", H5T_STD_U64LE},    {"F64", H5T_IEEE_F64LE},
  };
  for (const auto& [name, type] : table) {
    if (dtype == name) return H5Datatype(site.check_id(H5Tcopy(type), "H5Tcopy", dtype));
  }
  PGKM_ASSERT(false, "kept_file_type: unknown dtype ", dtype);
}

std::string now_utc() {
  const std::time_t t = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

// Opens a dataset of a layer and checks its element type and its extent.
DatasetInfo open_layer_dataset(const H5Site& site, hid_t group, const std::string& where,
                               const char* name, const std::vector<hsize_t>& expected_dims,
                               const char* dims_meaning) {
  const std::string what = str_cat(where, ": dataset '", name, "'");
  DatasetInfo info = open_dataset(site, group, name, what);
  if (info.dims != expected_dims) {
    site.fail(str_cat(what, " has shape ", dims_text(info.dims), ", expected ",
                      dims_text(expected_dims), " (", dims_meaning, ")"));
  }
  return info;
}

void expect_unsigned(const H5Site& site, const DatasetInfo& info, const std::string& what,
                     size_t max_size) {
  if (info.type_class != H5T_INTEGER || info.is_signed || info.type_size > max_size) {
    site.fail(str_cat(what, " has elements of type ", info.is_signed ? "signed " : "",
                      type_class_name(info.type_class), " of ", info.type_size,
                      " bytes, expected an unsigned integer of at most ", max_size, " bytes"));
  }
}

// --- Packed codes (schema v2) ---------------------------------------------------------
// `codes`: uint8 [ceil(n * bits / 8)], attribute `bits` = ceil(log2 K); io/code_pack.h.
constexpr const char* kCodeBitsAttr = "bits";

void write_packed_codes(const H5Site& site, hid_t g, const LayerRecord& layer) {
  const int bits = code_bits(layer.settings.kmeans.n_centroids);
  const std::vector<uint8_t> packed = pack_codes(layer.codes, bits);
  write_dataset(site, g, "codes", H5T_STD_U8LE, H5T_NATIVE_UINT8, {packed.size()}, packed.data());
  H5Dataset codes(site.check_id(H5Dopen2(g, "codes", H5P_DEFAULT), "H5Dopen2", "dataset 'codes'"));
  write_attr_int(site, codes.get(), kCodeBitsAttr, bits);
}

void read_packed_codes(const H5Site& site, hid_t group, const std::string& where, hsize_t n,
                       LayerRecord& layer) {
  const std::string what = str_cat(where, ": dataset 'codes'");
  const int bits = code_bits(layer.settings.kmeans.n_centroids);
  DatasetInfo codes = open_layer_dataset(site, group, where, "codes",
                                         {static_cast<hsize_t>(packed_code_bytes(n, bits))},
                                         "numel / block_size codes packed at ceil(log2 K) bits");
  if (codes.type_class != H5T_INTEGER || codes.is_signed || codes.type_size != 1) {
    site.fail(str_cat(what, " has elements of type ", type_class_name(codes.type_class), " of ",
                      codes.type_size, " bytes, expected uint8 (packed codes)"));
  }
  const int64_t stored_bits = read_attr_int(site, codes.dataset.get(), kCodeBitsAttr, what);
  if (stored_bits != bits) {
    site.fail(str_cat(what, ": attribute 'bits' is ", stored_bits, ", expected ", bits,
                      " = ceil(log2 n_centroids ", layer.settings.kmeans.n_centroids, ")"));
  }
  std::vector<uint8_t> packed(codes.n_elements);
  read_dataset(site, codes, H5T_NATIVE_UINT8, packed.data(), what);
  layer.codes.resize(n);
  if (!unpack_codes(packed, bits, layer.codes)) {
    site.fail(str_cat(what, ": the padding bits after the last code are not zero"));
  }
}

void read_layer_datasets(const H5Site& site, hid_t group, const std::string& where,
                         int64_t format_version, LayerRecord& layer) {
  PGKM_EXPECTS(layer.settings.block_size >= 1 && layer.settings.kmeans.n_centroids >= 1,
               site.path(), where, ": block_size ", layer.settings.block_size, " and n_centroids ",
               layer.settings.kmeans.n_centroids, " must be at least 1");
  const auto k = static_cast<hsize_t>(layer.settings.kmeans.n_centroids);
  const auto b = static_cast<hsize_t>(layer.settings.block_size);
  const int64_t numel = checked_numel(site.path(), where, layer.shape, false);
  PGKM_EXPECTS(numel % layer.settings.block_size == 0, site.path(), where, ": block_size ",
               layer.settings.block_size, " does not divide numel ", numel);
  const auto n = static_cast<hsize_t>(numel / layer.settings.block_size);

  DatasetInfo centroids =
      open_layer_dataset(site, group, where, "centroids", {k, b}, "n_centroids, block_size");
  if (centroids.type_class != H5T_FLOAT || (centroids.type_size != 2 && centroids.type_size != 4)) {
    site.fail(str_cat(where, ": dataset 'centroids' has elements of type ",
                      type_class_name(centroids.type_class), " of ", centroids.type_size,
                      " bytes, expected float16 or float32"));
  }
  layer.settings.centroid_dtype =
      centroids.type_size == 2 ? CentroidDtype::kF16 : CentroidDtype::kF32;
  layer.centroids.resize(centroids.n_elements);
  read_dataset(site, centroids, H5T_NATIVE_FLOAT, layer.centroids.data(),
               str_cat(where, ": dataset 'centroids'"));

  // v4: an importance-weighted layer's column scales (absent for a plain layer).
  if (format_version >= 4 && link_exists(site, group, kColumnScales)) {
    const auto row = static_cast<hsize_t>(numel / layer.shape[0]);
    DatasetInfo scales =
        open_layer_dataset(site, group, where, kColumnScales, {row}, "the weight's row length");
    if (scales.type_class != H5T_FLOAT || scales.type_size != 4) {
      site.fail(str_cat(where, ": dataset 'column_scales' has elements of type ",
                        type_class_name(scales.type_class), " of ", scales.type_size,
                        " bytes, expected float32"));
    }
    layer.column_scales.resize(scales.n_elements);
    read_dataset(site, scales, H5T_NATIVE_FLOAT, layer.column_scales.data(),
                 str_cat(where, ": dataset 'column_scales'"));
  }

  if (format_version >= 2) {
    read_packed_codes(site, group, where, n, layer);
    // v2 stores no counts: they are the histogram of the codes (a code >= K is reported
    // by validate_layer).
    layer.counts.assign(k, 0);
    for (uint32_t c : layer.codes) {
      if (c < k) ++layer.counts[c];
    }
    return;
  } else {
    DatasetInfo codes = open_layer_dataset(site, group, where, "codes", {n}, "numel / block_size");
    expect_unsigned(site, codes, str_cat(where, ": dataset 'codes'"), 4);
    layer.codes.resize(codes.n_elements);
    read_dataset(site, codes, H5T_NATIVE_UINT32, layer.codes.data(),
                 str_cat(where, ": dataset 'codes'"));
  }

  DatasetInfo counts = open_layer_dataset(site, group, where, "counts", {k}, "n_centroids");
  expect_unsigned(site, counts, str_cat(where, ": dataset 'counts'"), 8);
  layer.counts.resize(counts.n_elements);
  read_dataset(site, counts, H5T_NATIVE_UINT64, layer.counts.data(),
               str_cat(where, ": dataset 'counts'"));
}

}  // namespace

std::string escape_name(const std::string& name) {
  PGKM_EXPECTS(!name.empty(), "", "a tensor name must not be empty");
  const bool only_dots = name.find_first_not_of('.') == std::string::npos;
  std::string out;
  for (size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    if (c == '%') {
      out += "%25";
    } else if (c == '/') {
      out += "%2F";
    } else if (only_dots && i == 0) {
      out += "%2E";
    } else {
      out += c;
    }
  }
  return out;
}

void validate_layer(const H5Site& site, const LayerRecord& layer) {
  const std::string& path = site.path();
  const std::string where = str_cat("layer '", layer.name, "'");
  PGKM_EXPECTS(!layer.name.empty(), path, "a layer has an empty name");
  PGKM_EXPECTS(layer.shape.size() >= 2, path, where, ": shape ", shape_text(layer.shape),
               " has rank ", layer.shape.size(), ", expected 2 or more");
  const int64_t numel = checked_numel(path, where, layer.shape, false);
  const int64_t row = numel / layer.shape[0];
  const int64_t b = layer.settings.block_size;
  PGKM_EXPECTS(b >= 1 && row % b == 0, path, where, ": block_size ", b,
               " does not divide the row length ", row);
  const int64_t k = layer.settings.kmeans.n_centroids;
  PGKM_EXPECTS(k >= 1 && k <= (int64_t{1} << 32), path, where, ": n_centroids ", k,
               " is outside 1..2^32");
  for_each_layer_field(layer, [&](const FieldInfo& f, const auto& value) {
    using T = std::decay_t<decltype(value)>;
    if constexpr (std::is_integral_v<T> && std::is_signed_v<T>) {
      if (f.uses & kArchive) {
        PGKM_EXPECTS(value >= 0, path, where, ": ", f.name, " is negative (", value, ")");
      }
    }
  });
  PGKM_EXPECTS(layer.centroids.size() == static_cast<size_t>(k * b), path, where,
               ": centroids has ", layer.centroids.size(),
               " values, expected n_centroids * block_size = ", k * b);
  for (size_t i = 0; i < layer.centroids.size(); ++i) {
    PGKM_EXPECTS(std::isfinite(layer.centroids[i]), path, where, ": centroids value ", i, " is ",
                 layer.centroids[i]);
  }
  PGKM_EXPECTS(layer.codes.size() == static_cast<size_t>(numel / b), path, where, ": codes has ",
               layer.codes.size(), " entries, expected numel / block_size = ", numel / b);
  for (size_t i = 0; i < layer.codes.size(); ++i) {
    PGKM_EXPECTS(layer.codes[i] < k, path, where, ": codes[", i, "] = ", layer.codes[i],
                 " is not below n_centroids ", k);
  }
  PGKM_EXPECTS(
      layer.column_scales.empty() || layer.column_scales.size() == static_cast<size_t>(row), path,
      where, ": column_scales has ", layer.column_scales.size(),
      " values, expected the row length ", row);
  for (size_t i = 0; i < layer.column_scales.size(); ++i) {
    PGKM_EXPECTS(std::isfinite(layer.column_scales[i]) && layer.column_scales[i] > 0, path, where,
                 ": column_scales value ", i, " is ", layer.column_scales[i],
                 ", expected a finite value > 0");
  }
  PGKM_EXPECTS(layer.counts.size() == static_cast<size_t>(k), path, where, ": counts has ",
               layer.counts.size(), " entries, expected n_centroids = ", k);
  for (size_t i = 0; i < layer.counts.size(); ++i) {
    PGKM_EXPECTS(layer.counts[i] <= std::numeric_limits<uint32_t>::max(), path, where, ": counts[",
                 i, "] = ", layer.counts[i], " does not fit uint32");
  }
}

void write_header_attrs(const H5Site& site, hid_t root, const ArchiveHeader& header) {
  write_attr_string(site, root, "format", kFormatName);
  write_attr_int(site, root, "format_version", kArchiveFormatVersion);
  write_attr_string(site, root, "tool_version", header.tool_version);
  write_attr_string(site, root, "config_text", header.config_text);
  write_attr_string(site, root, "config_format", header.config_format);
  write_attr_string(site, root, "algorithm", header.algorithm);
  write_attr_uint(site, root, "seed", header.seed);
  write_attr_int(site, root, "iterations", header.iterations);
  write_attr_string(site, root, "settings_json", header.settings_json);
  write_attr_string(site, root, "source_files", header.source_files_json);
  write_attr_string(site, root, "created_utc",
                    header.created_utc.empty() ? now_utc() : header.created_utc);
}

ArchiveHeader read_header_attrs(const H5Site& site, hid_t root, int64_t& format_version) {
  const std::string where = "root group";
  if (!has_attr(site, root, "format", where)) {
    site.fail("not a pgkm archive: the root group has no attribute 'format'");
  }
  const std::string format = read_attr_string(site, root, "format", where);
  if (format != kFormatName) {
    site.fail(str_cat("not a pgkm archive: attribute 'format' is '", format, "', expected '",
                      kFormatName, "'"));
  }
  format_version = read_attr_int(site, root, "format_version", where);
  if (format_version > kArchiveFormatVersion) {
    site.fail(str_cat("format_version ", format_version, " is newer than this pgkm reads (",
                      kArchiveFormatVersion, "); use a newer pgkm"));
  }
  if (format_version < 1) site.fail(str_cat("format_version ", format_version, " is not valid"));
  ArchiveHeader h;
  h.tool_version = read_attr_string(site, root, "tool_version", where);
  h.config_text = read_attr_string(site, root, "config_text", where);
  h.config_format = read_attr_string(site, root, "config_format", where);
  h.algorithm = read_attr_string(site, root, "algorithm", where);
  h.seed = read_attr_uint(site, root, "seed", where);
  h.iterations = read_attr_int(site, root, "iterations", where);
  h.settings_json = read_attr_string(site, root, "settings_json", where);
  h.source_files_json = read_attr_string(site, root, "source_files", where);
  h.created_utc = read_attr_string(site, root, "created_utc", where);
  return h;
}

namespace {

// Writes the kArchive fields of a layer as attributes of its group, in table order.
void write_layer_attrs(const H5Site& site, hid_t g, const LayerRecord& layer) {
  for_each_layer_field(layer, [&](const FieldInfo& f, const auto& value) {
    if ((f.uses & kArchive) == 0) return;
    using T = std::decay_t<decltype(value)>;
    if constexpr (std::is_same_v<T, std::string>) {
      write_attr_string(site, g, f.name, value);
    } else if constexpr (std::is_enum_v<T>) {
      write_attr_string(site, g, f.name, field_text(value));
    } else if constexpr (std::is_same_v<T, bool>) {
      write_attr_int(site, g, f.name, value ? 1 : 0);
    } else if constexpr (std::is_integral_v<T> && std::is_signed_v<T>) {
      write_attr_int(site, g, f.name, value);
    } else if constexpr (std::is_integral_v<T>) {
      write_attr_uint(site, g, f.name, value);
    } else if constexpr (std::is_floating_point_v<T>) {
      write_attr_double(site, g, f.name, value);
    } else if constexpr (std::is_same_v<T, std::vector<int64_t>>) {
      write_attr_ints(site, g, f.name, value);
    } else if constexpr (std::is_same_v<T, std::vector<IterationStats>>) {
      write_attr_string(site, g, f.name, iteration_stats_json(value, kArchive).dump());
    } else {
      static_assert(sizeof(T) == 0, "no archive encoding for this field type");
    }
  });
}

// Reads the kArchive fields back, checking each attribute's type and value.
void read_layer_attrs(const H5Site& site, hid_t g, const std::string& where, LayerRecord& layer) {
  for_each_layer_field(layer, [&](const FieldInfo& f, auto& value) {
    if ((f.uses & kArchive) == 0) return;
    using T = std::decay_t<decltype(value)>;
    if constexpr (std::is_same_v<T, std::string>) {
      value = read_attr_string(site, g, f.name, where);
    } else if constexpr (std::is_enum_v<T>) {
      const std::string text = read_attr_string(site, g, f.name, where);
      if (!parse_field_text(text, value)) {
        site.fail(str_cat(where, ": attribute '", f.name, "' has the unknown value '", text, "'"));
      }
    } else if constexpr (std::is_same_v<T, bool>) {
      const int64_t v = read_attr_int(site, g, f.name, where);
      if (v != 0 && v != 1) {
        site.fail(str_cat(where, ": attribute '", f.name, "' is ", v, ", expected 0 or 1"));
      }
      value = v == 1;
    } else if constexpr (std::is_integral_v<T> && std::is_signed_v<T>) {
      const int64_t v = read_attr_int(site, g, f.name, where);
      if (v < std::numeric_limits<T>::min() || v > std::numeric_limits<T>::max()) {
        site.fail(str_cat(where, ": attribute '", f.name, "' is out of range (", v, ")"));
      }
      value = static_cast<T>(v);
    } else if constexpr (std::is_integral_v<T>) {
      value = static_cast<T>(read_attr_uint(site, g, f.name, where));
    } else if constexpr (std::is_floating_point_v<T>) {
      value = static_cast<T>(read_attr_double(site, g, f.name, where));
    } else if constexpr (std::is_same_v<T, std::vector<int64_t>>) {
      value = read_attr_ints(site, g, f.name, where);
    } else if constexpr (std::is_same_v<T, std::vector<IterationStats>>) {
      const std::string text = read_attr_string(site, g, f.name, where);
      const std::string context = str_cat(where, ": attribute '", f.name, "'");
      const nlohmann::json parsed = nlohmann::json::parse(text, nullptr, false);
      if (parsed.is_discarded()) site.fail(str_cat(context, " is not valid JSON"));
      try {
        value = parse_iteration_stats(parsed, context);
      } catch (const InputError& e) {
        site.fail(e.what());
      }
    } else {
      static_assert(sizeof(T) == 0, "no archive encoding for this field type");
    }
  });
}

}  // namespace

void write_layer_group(const H5Site& site, hid_t layers, const LayerRecord& layer) {
  H5Group group = create_group(site, layers, escape_name(layer.name));
  const hid_t g = group.get();
  write_layer_attrs(site, g, layer);
  const auto k = static_cast<hsize_t>(layer.settings.kmeans.n_centroids);
  const auto b = static_cast<hsize_t>(layer.settings.block_size);
  if (layer.settings.centroid_dtype == CentroidDtype::kF16) {
    std::vector<uint16_t> half(layer.centroids.size());
    for (size_t i = 0; i < half.size(); ++i)
      half[i] = float_to_f16(layer.centroids[i]);
    H5Datatype f16 = make_f16_type(site);
    write_dataset(site, g, "centroids", f16.get(), f16.get(), {k, b}, half.data());
  } else {
    write_dataset(site, g, "centroids", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, {k, b},
                  layer.centroids.data());
  }
  write_packed_codes(site, g, layer);
  if (!layer.column_scales.empty()) {
    write_dataset(site, g, kColumnScales, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT,
                  {static_cast<hsize_t>(layer.column_scales.size())}, layer.column_scales.data());
  }
  write_checksum(site, g, layer_checksum(layer));
  // Last: a layer counts only once this mark follows all of its data.
  write_attr_int(site, g, "complete", 1);
}

LayerRecord read_layer_group(const H5Site& site, hid_t layers, const std::string& link,
                             int64_t format_version) {
  H5Group group = open_group(site, layers, link);
  const hid_t g = group.get();
  LayerRecord layer;
  const bool named = has_attr(site, g, "name", str_cat("layer '", link, "'"));
  layer.name = named ? read_attr_string(site, g, "name", str_cat("layer '", link, "'")) : link;
  const std::string where = str_cat("layer '", layer.name, "'");
  if (!has_attr(site, g, "complete", where)) {
    site.fail(str_cat(where, " is incomplete (attribute 'complete' is missing)"));
  }
  const int64_t complete = read_attr_int(site, g, "complete", where);
  if (complete != 1) site.fail(str_cat(where, " is incomplete (complete = ", complete, ")"));
  if (!named) site.fail(str_cat(where, ": attribute 'name' is missing"));
  if (escape_name(layer.name) != link) {
    site.fail(str_cat(where, " is stored under the wrong group name '", link, "'"));
  }
  read_layer_attrs(site, g, where, layer);
  read_layer_datasets(site, g, where, format_version, layer);
  validate_layer(site, layer);
  verify_checksum(site, g, where, layer_checksum(layer), format_version);
  return layer;
}

void validate_kept(const H5Site& site, const KeptTensor& tensor) {
  const std::string where = str_cat("tensor '", tensor.name, "'");
  PGKM_EXPECTS(!tensor.name.empty(), site.path(), "a kept tensor has an empty name");
  const size_t size = safetensors_dtype_size(tensor.dtype);
  PGKM_EXPECTS(size > 0, site.path(), where, ": unknown dtype '", tensor.dtype, "'");
  const int64_t numel = checked_numel(site.path(), where, tensor.shape, true);
  PGKM_EXPECTS(tensor.bytes.size() == static_cast<uint64_t>(numel) * size, site.path(), where, ": ",
               tensor.bytes.size(), " bytes, expected ", numel, " x ", size, " (shape ",
               shape_text(tensor.shape), ", ", tensor.dtype, ")");
}

void write_kept_dataset(const H5Site& site, hid_t tensors, const KeptTensor& tensor) {
  const std::string where = str_cat("tensor '", tensor.name, "'");
  const std::string link = escape_name(tensor.name);
  H5Datatype type = kept_file_type(site, tensor.dtype);
  write_dataset(site, tensors, link, type.get(), type.get(),
                std::vector<hsize_t>(tensor.shape.begin(), tensor.shape.end()),
                tensor.bytes.data());
  H5Dataset dataset(site.check_id(H5Dopen2(tensors, link.c_str(), H5P_DEFAULT), "H5Dopen2", where));
  write_attr_string(site, dataset.get(), "name", tensor.name);
  write_attr_string(site, dataset.get(), "dtype", tensor.dtype);
  write_attr_ints(site, dataset.get(), "shape", tensor.shape);
  write_checksum(site, dataset.get(), kept_checksum(tensor));
}

KeptTensor read_kept_dataset(const H5Site& site, hid_t tensors, const std::string& link,
                             int64_t format_version) {
  const std::string what = str_cat("tensor '", link, "'");
  DatasetInfo info = open_dataset(site, tensors, link, what);
  const hid_t d = info.dataset.get();
  KeptTensor t;
  t.name = read_attr_string(site, d, "name", what);
  const std::string where = str_cat("tensor '", t.name, "'");
  if (escape_name(t.name) != link) {
    site.fail(str_cat(where, " is stored under the wrong dataset name '", link, "'"));
  }
  t.dtype = read_attr_string(site, d, "dtype", where);
  t.shape = read_attr_ints(site, d, "shape", where);
  const size_t size = safetensors_dtype_size(t.dtype);
  if (size == 0) site.fail(str_cat(where, ": unknown dtype '", t.dtype, "'"));
  const int64_t numel = checked_numel(site.path(), where, t.shape, true);
  const uint64_t expected = static_cast<uint64_t>(numel) * size;
  const uint64_t stored = info.n_elements * info.type_size;
  if (info.type_class != H5T_INTEGER && info.type_class != H5T_FLOAT) {
    site.fail(str_cat(where, ": the dataset has elements of type ",
                      type_class_name(info.type_class), ", expected an integer or float type"));
  }
  if (stored != expected) {
    site.fail(str_cat(where, ": size mismatch: the dataset holds ", stored, " bytes (",
                      info.n_elements, " elements of ", info.type_size, " bytes), but shape ",
                      shape_text(t.shape), " of ", t.dtype, " needs ", expected));
  }
  if (info.dims != std::vector<hsize_t>(t.shape.begin(), t.shape.end())) {
    site.fail(str_cat(where, ": the dataset has shape ", dims_text(info.dims),
                      " but attribute 'shape' is ", shape_text(t.shape)));
  }
  t.bytes.resize(expected);
  // Reading in the stored type converts nothing: the bytes come back exactly.
  read_dataset(site, info, info.type.get(), t.bytes.data(), where);
  verify_checksum(site, d, where, kept_checksum(t), format_version);
  return t;
}

std::vector<std::string> real_names(const H5Site& site, hid_t group, const std::string& what) {
  std::vector<std::string> names;
  for (const std::string& link : child_names(site, group, what)) {
    const std::string child = str_cat(what, " '", link, "'");
    H5Object obj(site.check_id(H5Oopen(group, link.c_str(), H5P_DEFAULT), "H5Oopen", child));
    names.push_back(read_attr_string(site, obj.get(), "name", child));
  }
  return names;
}

}  // namespace pgkm::io
