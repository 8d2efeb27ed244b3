// Checked HDF5 primitives for the archive: every failed call becomes a typed pgkm
// error naming the file, the call and the object (docs/CONVENTIONS.md #6, #14).
//
// Internal to io/: the archive schema (io/archive_schema.h) is built from these.
#pragma once

#include <hdf5.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/atomic_file.h"
#include "io/hdf5_handles.h"

namespace pgkm::io {

// Where HDF5 errors are reported. A site that reads untrusted input turns failures
// into InputError(path, ...); a site that writes turns them into SystemError. Both
// name the HDF5 call and the object, and append the library's innermost message.
// Constructing a site silences HDF5's automatic printing of its error stack.
class H5Site {
 public:
  H5Site(std::string path, bool reading);

  const std::string& path() const { return path_; }

  // Throws InputError(path, message) when reading, else SystemError("path: message").
  [[noreturn]] void fail(const std::string& message) const;
  // Returns `id`, or fails with "<call> failed for <what>: <hdf5 message>" when it is negative.
  hid_t check_id(hid_t id, const char* call, const std::string& what) const;
  // Fails like check_id when `status` is negative.
  void check_ok(herr_t status, const char* call, const std::string& what) const;
  // check_ok for predicates (H5Lexists, H5Aexists, H5Tis_variable_str): returns status > 0.
  bool check_bool(htri_t status, const char* call, const std::string& what) const;
  // Returns a count or length (ssize_t, hssize_t, int), failing when it is negative.
  int64_t check_size(int64_t value, const char* call, const std::string& what) const;

 private:
  std::string path_;
  bool reading_;
};

// Files. create_file truncates, or with `exclusive` fails when anything (a file, even a
// dangling symbolic link) is at the path (H5F_ACC_EXCL: O_CREAT | O_EXCL); files are closed with
// H5F_CLOSE_SEMI, so closing one whose objects are still open fails instead of silently keeping it
// open.
H5File create_file(const H5Site& site, bool exclusive = false);
H5File open_file(const H5Site& site, bool writable);
// Creates an HDF5 file under a fresh temporary name next to `final_path`, exclusively, so
// that nothing planted at a predictable name is followed or overwritten
// (core/atomic_file.h). `file` receives the open file; close it before commit().
std::unique_ptr<AtomicFile> create_atomic_hdf5(const std::string& final_path, H5File& file);
// With `on`, a failed HDF5 call also prints the library's whole error stack to stderr
// (pgkm --verbose); by default only its cause goes into the error message.
void print_hdf5_error_stacks(bool on);
// True when `path` exists and is an HDF5 file (H5Fis_hdf5); never throws for bad files.
bool is_hdf5_file(const std::string& path);

// Groups and links. Created groups track link creation order, so readers list
// children in the order they were written.
H5Group create_group(const H5Site& site, hid_t parent, const std::string& name);
H5Group open_group(const H5Site& site, hid_t parent, const std::string& name);
bool link_exists(const H5Site& site, hid_t parent, const std::string& name);
// Link names of a group's children, in creation order when tracked, else by name.
std::vector<std::string> child_names(const H5Site& site, hid_t group, const std::string& what);

// Attributes (scalar unless noted); a writer fails if the attribute already exists.
// `where` names the owner in messages, e.g. "layer 'fc1'" or "the root group".
void write_attr_string(const H5Site& site, hid_t obj, const char* name, const std::string& value);
void write_attr_int(const H5Site& site, hid_t obj, const char* name, int64_t value);
void write_attr_uint(const H5Site& site, hid_t obj, const char* name, uint64_t value);
void write_attr_double(const H5Site& site, hid_t obj, const char* name, double value);
// A 1-D int64 array (possibly of length 0).
void write_attr_ints(const H5Site& site, hid_t obj, const char* name,
                     const std::vector<int64_t>& values);

bool has_attr(const H5Site& site, hid_t obj, const char* name, const std::string& where);
// Readers fail when the attribute is missing, has another type class or is not scalar.
std::string read_attr_string(const H5Site& site, hid_t obj, const char* name,
                             const std::string& where);
int64_t read_attr_int(const H5Site& site, hid_t obj, const char* name, const std::string& where);
uint64_t read_attr_uint(const H5Site& site, hid_t obj, const char* name, const std::string& where);
double read_attr_double(const H5Site& site, hid_t obj, const char* name, const std::string& where);
// A 1-D integer array; a null dataspace reads as an empty array.
std::vector<int64_t> read_attr_ints(const H5Site& site, hid_t obj, const char* name,
                                    const std::string& where);

// IEEE binary16, little-endian (HDF5 1.10 predefines no half type; h5py builds the
// same one and reads it as numpy.float16).
H5Datatype make_f16_type(const H5Site& site);

// Writes a contiguous dataset `name` of `file_type` with `dims` (empty dims: scalar)
// from `data` in `mem_type`.
void write_dataset(const H5Site& site, hid_t parent, const std::string& name, hid_t file_type,
                   hid_t mem_type, const std::vector<hsize_t>& dims, const void* data);

// "integer", "float", "string", ... for messages.
const char* type_class_name(H5T_class_t type_class);

// An open dataset with its storage type and extent.
struct DatasetInfo {
  H5Dataset dataset;
  H5Datatype type;            // the type stored in the file
  H5T_class_t type_class{};   // H5T_INTEGER, H5T_FLOAT, ...
  size_t type_size = 0;       // bytes per element
  bool is_signed = false;     // integers only
  std::vector<hsize_t> dims;  // empty for a scalar dataset
  uint64_t n_elements = 0;
};
// Opens dataset `name`, failing with "<what> is missing" if there is none, and checks that
// a contiguous dataset stores all of its elements (so its extent can be trusted).
DatasetInfo open_dataset(const H5Site& site, hid_t parent, const std::string& name,
                         const std::string& what);
// Reads the whole dataset into `out`, converted to `mem_type`.
void read_dataset(const H5Site& site, const DatasetInfo& info, hid_t mem_type, void* out,
                  const std::string& what);

}  // namespace pgkm::io
