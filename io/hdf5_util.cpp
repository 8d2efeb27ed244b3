#include "io/hdf5_util.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <limits>
#include <memory>

#include "core/errors.h"

namespace pgkm::io {
namespace {

// HDF5 registers an atexit handler that closes every file still open. After a failed
// H5Fclose (a full disk) the library keeps a half-closed file, and that handler then
// crashes (SIGSEGV in H5F__close_cb). pgkm closes every file itself (RAII), so the handler
// is switched off; H5dont_atexit must run before the library initialises, hence a static.
[[maybe_unused]] const herr_t kNoAtexit = H5dont_atexit();

bool g_print_stacks = false;  // --verbose: HDF5's whole error stack goes to stderr
thread_local int g_last_errno = 0;

// The cause of the failure on HDF5's error stack: the innermost description, and the
// system error number that a file driver recorded in its text ("errno = 28"), 0 if none.
// Prints the whole stack with --verbose, then clears it.
struct Hdf5Failure {
  std::string message;
  int err = 0;
};

Hdf5Failure take_hdf5_failure() {
  Hdf5Failure failure;
  auto visit = [](unsigned n, const H5E_error2_t* e, void* data) -> herr_t {
    auto& f = *static_cast<Hdf5Failure*>(data);
    if (e->desc == nullptr) return 0;
    const std::string desc = e->desc;
    if (n == 0) f.message = desc.substr(0, desc.find_first_of("\r\n"));
    const size_t at = desc.find("errno = ");
    if (f.err == 0 && at != std::string::npos) f.err = std::atoi(desc.c_str() + at + 8);
    return 0;
  };
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, visit, &failure);
  if (g_print_stacks) H5Eprint2(H5E_DEFAULT, stderr);
  H5Eclear2(H5E_DEFAULT);
  g_last_errno = failure.err;
  return failure;
}

std::string quoted(const std::string& s) {
  return "'" + s + "'";
}

// Opens attribute `name` of `obj`, failing with "<where>: attribute 'name' is missing".
H5Attribute open_attr(const H5Site& site, hid_t obj, const char* name, const std::string& where) {
  if (!has_attr(site, obj, name, where)) {
    site.fail(str_cat(where, ": attribute '", name, "' is missing"));
  }
  return H5Attribute(site.check_id(H5Aopen(obj, name, H5P_DEFAULT), "H5Aopen",
                                   str_cat(where, " attribute '", name, "'")));
}

// Checks that an attribute holds one value of `expected` class; returns its file type.
H5Datatype check_scalar_attr(const H5Site& site, const H5Attribute& attr, const char* name,
                             const std::string& where, H5T_class_t expected,
                             const char* expected_text) {
  const std::string what = str_cat(where, " attribute '", name, "'");
  H5Datatype type(site.check_id(H5Aget_type(attr.get()), "H5Aget_type", what));
  if (H5Tget_class(type.get()) != expected) site.fail(str_cat(what, " is not ", expected_text));
  H5Dataspace space(site.check_id(H5Aget_space(attr.get()), "H5Aget_space", what));
  const hssize_t n = H5Sget_simple_extent_npoints(space.get());
  if (n != 1) site.fail(str_cat(what, " holds ", n, " values, expected one"));
  return type;
}

template <typename T>
T read_scalar(const H5Site& site, hid_t obj, const char* name, const std::string& where,
              H5T_class_t expected, const char* expected_text, hid_t mem_type) {
  H5Attribute attr = open_attr(site, obj, name, where);
  check_scalar_attr(site, attr, name, where, expected, expected_text);
  T value{};
  site.check_ok(H5Aread(attr.get(), mem_type, &value), "H5Aread",
                str_cat(where, " attribute '", name, "'"));
  return value;
}

void write_scalar(const H5Site& site, hid_t obj, const char* name, hid_t file_type, hid_t mem_type,
                  const void* value) {
  H5Dataspace space(site.check_id(H5Screate(H5S_SCALAR), "H5Screate", name));
  H5Attribute attr(site.check_id(
      H5Acreate2(obj, name, file_type, space.get(), H5P_DEFAULT, H5P_DEFAULT), "H5Acreate2", name));
  site.check_ok(H5Awrite(attr.get(), mem_type, value), "H5Awrite", name);
}

H5Datatype make_string_type(const H5Site& site, size_t size) {
  H5Datatype type(site.check_id(H5Tcopy(H5T_C_S1), "H5Tcopy", "string type"));
  site.check_ok(H5Tset_size(type.get(), size), "H5Tset_size", "string type");
  site.check_ok(H5Tset_cset(type.get(), H5T_CSET_UTF8), "H5Tset_cset", "string type");
  return type;
}

// A contiguous dataset must store exactly n_elements * type_size bytes: this catches
// data that was never written and extents that promise more than the file holds (a
// reader must not allocate memory for them). Chunked (e.g. compressed) data is not checked.
void check_contiguous_storage(const H5Site& site, const DatasetInfo& info,
                              const std::string& what) {
  H5PropList dcpl(
      site.check_id(H5Dget_create_plist(info.dataset.get()), "H5Dget_create_plist", what));
  if (H5Pget_layout(dcpl.get()) != H5D_CONTIGUOUS || info.n_elements == 0) return;
  const hsize_t stored = H5Dget_storage_size(info.dataset.get());
  const bool fits = info.n_elements <= std::numeric_limits<uint64_t>::max() / info.type_size;
  if (!fits || stored != info.n_elements * info.type_size) {
    site.fail(str_cat(what, " stores ", stored, " bytes but its extent of ", info.n_elements,
                      " elements of ", info.type_size,
                      " bytes needs more (truncated or unwritten)"));
  }
}

}  // namespace

const char* type_class_name(H5T_class_t type_class) {
  switch (type_class) {
    case H5T_INTEGER:
      return "integer";
    case H5T_FLOAT:
      return "float";
    case H5T_STRING:
      return "string";
    case H5T_COMPOUND:
      return "compound";
    case H5T_ENUM:
      return "enum";
    case H5T_VLEN:
      return "variable-length";
    case H5T_ARRAY:
      return "array";
    default:
      return "other";
  }
}

H5Site::H5Site(std::string path, bool reading) : path_(std::move(path)), reading_(reading) {
  // Failures surface as exceptions with the library's message; its stack printing
  // would only add noise (and interleave between ranks).
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
}

void H5Site::fail(const std::string& message) const {
  if (reading_) throw InputError(path_, message);
  throw SystemError(str_cat(path_, ": ", message));
}

hid_t H5Site::check_id(hid_t id, const char* call, const std::string& what) const {
  if (id < 0) {
    const Hdf5Failure f = take_hdf5_failure();
    // A system error (a full disk, an I/O error) is what the user must act on: it leads,
    // the HDF5 call follows; HDF5's own text (buffer addresses and all) only with --verbose.
    if (f.err != 0) fail(str_cat(errno_text(f.err), " (", call, " failed for ", what, ")"));
    fail(str_cat(call, " failed for ", what, f.message.empty() ? "" : ": ", f.message));
  }
  return id;
}

void H5Site::check_ok(herr_t status, const char* call, const std::string& what) const {
  check_id(status < 0 ? H5I_INVALID_HID : 0, call, what);
}

bool H5Site::check_bool(htri_t status, const char* call, const std::string& what) const {
  check_ok(status < 0 ? -1 : 0, call, what);
  return status > 0;
}

int64_t H5Site::check_size(int64_t value, const char* call, const std::string& what) const {
  return check_id(value, call, what);
}

H5File create_file(const H5Site& site, bool exclusive) {
  H5PropList fapl(site.check_id(H5Pcreate(H5P_FILE_ACCESS), "H5Pcreate", "file access list"));
  site.check_ok(H5Pset_fclose_degree(fapl.get(), H5F_CLOSE_SEMI), "H5Pset_fclose_degree", "file");
  return H5File(
      site.check_id(H5Fcreate(site.path().c_str(), exclusive ? H5F_ACC_EXCL : H5F_ACC_TRUNC,
                              H5P_DEFAULT, fapl.get()),
                    "H5Fcreate", "the file"));
}

H5File open_file(const H5Site& site, bool writable) {
  H5PropList fapl(site.check_id(H5Pcreate(H5P_FILE_ACCESS), "H5Pcreate", "file access list"));
  site.check_ok(H5Pset_fclose_degree(fapl.get(), H5F_CLOSE_SEMI), "H5Pset_fclose_degree", "file");
  const unsigned flags = writable ? H5F_ACC_RDWR : H5F_ACC_RDONLY;
  return H5File(
      site.check_id(H5Fopen(site.path().c_str(), flags, fapl.get()), "H5Fopen", "the file"));
}

void print_hdf5_error_stacks(bool on) {
  g_print_stacks = on;
}

std::unique_ptr<AtomicFile> create_atomic_hdf5(const std::string& final_path, H5File& file) {
  return std::make_unique<AtomicFile>(final_path, [&](const std::string& temp_path) {
    const H5Site site(temp_path, false);
    try {
      file = create_file(site, true);
      return true;
    } catch (const SystemError&) {
      if (g_last_errno == EEXIST) return false;  // the name was taken meanwhile
      // Created, then failed (a full disk): the file is ours and half made.
      ::unlink(temp_path.c_str());
      throw;
    }
  });
}

bool is_hdf5_file(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) return false;
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  const bool yes = H5Fis_hdf5(path.c_str()) > 0;
  H5Eclear2(H5E_DEFAULT);
  return yes;
}

H5Group create_group(const H5Site& site, hid_t parent, const std::string& name) {
  const std::string what = str_cat("group ", quoted(name));
  H5PropList gcpl(site.check_id(H5Pcreate(H5P_GROUP_CREATE), "H5Pcreate", what));
  site.check_ok(
      H5Pset_link_creation_order(gcpl.get(), H5P_CRT_ORDER_TRACKED | H5P_CRT_ORDER_INDEXED),
      "H5Pset_link_creation_order", what);
  return H5Group(site.check_id(
      H5Gcreate2(parent, name.c_str(), H5P_DEFAULT, gcpl.get(), H5P_DEFAULT), "H5Gcreate2", what));
}

H5Group open_group(const H5Site& site, hid_t parent, const std::string& name) {
  return H5Group(site.check_id(H5Gopen2(parent, name.c_str(), H5P_DEFAULT), "H5Gopen2",
                               str_cat("group ", quoted(name))));
}

bool link_exists(const H5Site& site, hid_t parent, const std::string& name) {
  return site.check_bool(H5Lexists(parent, name.c_str(), H5P_DEFAULT), "H5Lexists", quoted(name));
}

std::vector<std::string> child_names(const H5Site& site, hid_t group, const std::string& what) {
  H5PropList gcpl(site.check_id(H5Gget_create_plist(group), "H5Gget_create_plist", what));
  unsigned order_flags = 0;
  site.check_ok(H5Pget_link_creation_order(gcpl.get(), &order_flags), "H5Pget_link_creation_order",
                what);
  const H5_index_t index =
      (order_flags & H5P_CRT_ORDER_INDEXED) ? H5_INDEX_CRT_ORDER : H5_INDEX_NAME;
  H5G_info_t info{};
  site.check_ok(H5Gget_info(group, &info), "H5Gget_info", what);
  std::vector<std::string> names;
  for (hsize_t i = 0; i < info.nlinks; ++i) {
    const int64_t len = site.check_size(
        H5Lget_name_by_idx(group, ".", index, H5_ITER_INC, i, nullptr, 0, H5P_DEFAULT),
        "H5Lget_name_by_idx", what);
    std::string name(static_cast<size_t>(len) + 1, '\0');
    site.check_size(H5Lget_name_by_idx(group, ".", index, H5_ITER_INC, i, name.data(), name.size(),
                                       H5P_DEFAULT),
                    "H5Lget_name_by_idx", what);
    name.resize(static_cast<size_t>(len));
    names.push_back(std::move(name));
  }
  return names;
}

void write_attr_string(const H5Site& site, hid_t obj, const char* name, const std::string& value) {
  H5Datatype type = make_string_type(site, H5T_VARIABLE);
  const char* text = value.c_str();
  write_scalar(site, obj, name, type.get(), type.get(), &text);
}

void write_attr_int(const H5Site& site, hid_t obj, const char* name, int64_t value) {
  write_scalar(site, obj, name, H5T_STD_I64LE, H5T_NATIVE_INT64, &value);
}

void write_attr_uint(const H5Site& site, hid_t obj, const char* name, uint64_t value) {
  write_scalar(site, obj, name, H5T_STD_U64LE, H5T_NATIVE_UINT64, &value);
}

void write_attr_double(const H5Site& site, hid_t obj, const char* name, double value) {
  write_scalar(site, obj, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &value);
}

void write_attr_ints(const H5Site& site, hid_t obj, const char* name,
                     const std::vector<int64_t>& values) {
  const hsize_t n = values.size();
  H5Dataspace space(site.check_id(H5Screate_simple(1, &n, nullptr), "H5Screate_simple", name));
  H5Attribute attr(
      site.check_id(H5Acreate2(obj, name, H5T_STD_I64LE, space.get(), H5P_DEFAULT, H5P_DEFAULT),
                    "H5Acreate2", name));
  if (n > 0) site.check_ok(H5Awrite(attr.get(), H5T_NATIVE_INT64, values.data()), "H5Awrite", name);
}

bool has_attr(const H5Site& site, hid_t obj, const char* name, const std::string& where) {
  return site.check_bool(H5Aexists(obj, name), "H5Aexists",
                         str_cat(where, " attribute '", name, "'"));
}

std::string read_attr_string(const H5Site& site, hid_t obj, const char* name,
                             const std::string& where) {
  const std::string what = str_cat(where, " attribute '", name, "'");
  H5Attribute attr = open_attr(site, obj, name, where);
  H5Datatype file_type = check_scalar_attr(site, attr, name, where, H5T_STRING, "a string");
  if (site.check_bool(H5Tis_variable_str(file_type.get()), "H5Tis_variable_str", what)) {
    H5Datatype mem_type = make_string_type(site, H5T_VARIABLE);
    char* text = nullptr;
    site.check_ok(H5Aread(attr.get(), mem_type.get(), &text), "H5Aread", what);
    const std::unique_ptr<char, herr_t (*)(void*)> owned(text, H5free_memory);
    return text == nullptr ? std::string() : std::string(text);
  }
  const size_t size = H5Tget_size(file_type.get());
  H5Datatype mem_type = make_string_type(site, size);
  std::string text(size, '\0');
  site.check_ok(H5Aread(attr.get(), mem_type.get(), text.data()), "H5Aread", what);
  text.resize(std::strlen(text.c_str()));
  return text;
}

int64_t read_attr_int(const H5Site& site, hid_t obj, const char* name, const std::string& where) {
  return read_scalar<int64_t>(site, obj, name, where, H5T_INTEGER, "an integer", H5T_NATIVE_INT64);
}

uint64_t read_attr_uint(const H5Site& site, hid_t obj, const char* name, const std::string& where) {
  return read_scalar<uint64_t>(site, obj, name, where, H5T_INTEGER, "an integer",
                               H5T_NATIVE_UINT64);
}

double read_attr_double(const H5Site& site, hid_t obj, const char* name, const std::string& where) {
  return read_scalar<double>(site, obj, name, where, H5T_FLOAT, "a floating-point number",
                             H5T_NATIVE_DOUBLE);
}

std::vector<int64_t> read_attr_ints(const H5Site& site, hid_t obj, const char* name,
                                    const std::string& where) {
  const std::string what = str_cat(where, " attribute '", name, "'");
  H5Attribute attr = open_attr(site, obj, name, where);
  H5Datatype type(site.check_id(H5Aget_type(attr.get()), "H5Aget_type", what));
  if (H5Tget_class(type.get()) != H5T_INTEGER) site.fail(str_cat(what, " is not an integer array"));
  H5Dataspace space(site.check_id(H5Aget_space(attr.get()), "H5Aget_space", what));
  if (H5Sget_simple_extent_type(space.get()) == H5S_NULL) return {};
  if (H5Sget_simple_extent_ndims(space.get()) > 1) site.fail(str_cat(what, " is not 1-D"));
  const int64_t n = site.check_size(H5Sget_simple_extent_npoints(space.get()),
                                    "H5Sget_simple_extent_npoints", what);
  std::vector<int64_t> values(static_cast<size_t>(n));
  if (n > 0) site.check_ok(H5Aread(attr.get(), H5T_NATIVE_INT64, values.data()), "H5Aread", what);
  return values;
}

H5Datatype make_f16_type(const H5Site& site) {
  H5Datatype type(site.check_id(H5Tcopy(H5T_IEEE_F32LE), "H5Tcopy", "float16 type"));
  // sign bit 15, exponent bits 10..14, mantissa bits 0..9, bias 15.
  site.check_ok(H5Tset_fields(type.get(), 15, 10, 5, 0, 10), "H5Tset_fields", "float16 type");
  site.check_ok(H5Tset_size(type.get(), 2), "H5Tset_size", "float16 type");
  site.check_ok(H5Tset_ebias(type.get(), 15), "H5Tset_ebias", "float16 type");
  return type;
}

void write_dataset(const H5Site& site, hid_t parent, const std::string& name, hid_t file_type,
                   hid_t mem_type, const std::vector<hsize_t>& dims, const void* data) {
  const std::string what = str_cat("dataset ", quoted(name));
  const int rank = static_cast<int>(dims.size());
  H5Dataspace space(site.check_id(
      rank == 0 ? H5Screate(H5S_SCALAR) : H5Screate_simple(rank, dims.data(), nullptr), "H5Screate",
      what));
  H5Dataset dataset(site.check_id(H5Dcreate2(parent, name.c_str(), file_type, space.get(),
                                             H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
                                  "H5Dcreate2", what));
  if (H5Sget_simple_extent_npoints(space.get()) > 0) {
    site.check_ok(H5Dwrite(dataset.get(), mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data),
                  "H5Dwrite", what);
  }
}

DatasetInfo open_dataset(const H5Site& site, hid_t parent, const std::string& name,
                         const std::string& what) {
  if (!link_exists(site, parent, name)) site.fail(str_cat(what, " is missing"));
  DatasetInfo info;
  info.dataset =
      H5Dataset(site.check_id(H5Dopen2(parent, name.c_str(), H5P_DEFAULT), "H5Dopen2", what));
  info.type = H5Datatype(site.check_id(H5Dget_type(info.dataset.get()), "H5Dget_type", what));
  info.type_class = H5Tget_class(info.type.get());
  info.type_size = H5Tget_size(info.type.get());
  info.is_signed = info.type_class == H5T_INTEGER && H5Tget_sign(info.type.get()) != H5T_SGN_NONE;
  H5Dataspace space(site.check_id(H5Dget_space(info.dataset.get()), "H5Dget_space", what));
  const int64_t rank =
      site.check_size(H5Sget_simple_extent_ndims(space.get()), "H5Sget_simple_extent_ndims", what);
  info.dims.resize(static_cast<size_t>(rank));
  if (rank > 0) {
    site.check_size(H5Sget_simple_extent_dims(space.get(), info.dims.data(), nullptr),
                    "H5Sget_simple_extent_dims", what);
  }
  const int64_t n = site.check_size(H5Sget_simple_extent_npoints(space.get()),
                                    "H5Sget_simple_extent_npoints", what);
  info.n_elements = static_cast<uint64_t>(n);
  check_contiguous_storage(site, info, what);
  return info;
}

void read_dataset(const H5Site& site, const DatasetInfo& info, hid_t mem_type, void* out,
                  const std::string& what) {
  if (info.n_elements == 0) return;
  site.check_ok(H5Dread(info.dataset.get(), mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, out),
                "H5Dread", what);
}

}  // namespace pgkm::io
