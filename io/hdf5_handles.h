// RAII owners for HDF5 identifiers (docs/CONVENTIONS.md #8): every hid_t that pgkm opens
// is held by one of these, so no archive code calls H5*close itself.
#pragma once

#include <hdf5.h>

#include <utility>

namespace pgkm::io {

// Owns one HDF5 identifier and closes it with `Close` when destroyed. Move-only.
// Never wrap a predefined identifier (H5T_NATIVE_FLOAT, H5P_DEFAULT, ...): those
// belong to the library.
template <herr_t (*Close)(hid_t)>
class H5Handle {
 public:
  H5Handle() = default;
  // Takes ownership of `id` (may be negative: an empty handle).
  explicit H5Handle(hid_t id) : id_(id) {}
  H5Handle(const H5Handle&) = delete;
  H5Handle& operator=(const H5Handle&) = delete;
  H5Handle(H5Handle&& other) noexcept : id_(std::exchange(other.id_, H5I_INVALID_HID)) {}
  H5Handle& operator=(H5Handle&& other) noexcept {
    if (this != &other) {
      reset();
      id_ = std::exchange(other.id_, H5I_INVALID_HID);
    }
    return *this;
  }
  ~H5Handle() { reset(); }

  hid_t get() const { return id_; }
  bool valid() const { return id_ >= 0; }

  // Closes now and reports the library's status (negative on failure); use it where
  // a failed close matters, e.g. a file about to be renamed into place.
  herr_t close() noexcept {
    herr_t status = 0;
    if (id_ >= 0) status = Close(id_);
    id_ = H5I_INVALID_HID;
    return status;
  }
  // Closes now, ignoring the status (destructors, error paths).
  void reset() noexcept { static_cast<void>(close()); }

 private:
  hid_t id_ = H5I_INVALID_HID;
};

using H5File = H5Handle<H5Fclose>;
using H5Group = H5Handle<H5Gclose>;
using H5Dataset = H5Handle<H5Dclose>;
using H5Dataspace = H5Handle<H5Sclose>;
using H5Datatype = H5Handle<H5Tclose>;
using H5Object = H5Handle<H5Oclose>;  // a group or dataset opened by path (H5Oopen)
using H5Attribute = H5Handle<H5Aclose>;
using H5PropList = H5Handle<H5Pclose>;

}  // namespace pgkm::io
