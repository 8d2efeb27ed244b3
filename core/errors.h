// Error types shared by every pgkm library.
//
// Two tiers (docs/CONVENTIONS.md #6): InputError is bad input a user can fix, and its
// message names the file / tensor / layer and the offending value; SystemError is
// a failed library or system call. Internal invariants use PGKM_ASSERT, which aborts.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace pgkm {

// Base of all pgkm exceptions.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Bad input: `context` is what the input is (a layer, tensor or file name), the
// message says what is wrong with which value. what() is "context: message".
class InputError : public Error {
 public:
  InputError(std::string context, const std::string& message)
      : Error(context.empty() ? message : context + ": " + message), context_(std::move(context)) {}
  const std::string& context() const { return context_; }

 private:
  std::string context_;
};

// Bad usage of the command line that only shows once the files are looked at (an output
// that is one of the inputs): like InputError, but the CLI exits with 2, as for any usage
// error.
class UsageError : public InputError {
 public:
  using InputError::InputError;
};

// A failed call into the OS or a library (allocation, file system, MPI, HDF5).
class SystemError : public Error {
 public:
  using Error::Error;
};

// Concatenates anything streamable into one string: str_cat("K=", k, " > n=", n).
template <typename... Args>
std::string str_cat(const Args&... args) {
  std::ostringstream out;
  (out << ... << args);
  return out.str();
}

// strerror(err) starting in lower case, for "PATH: no space left on device".
std::string errno_text(int err);

[[noreturn]] void assert_fail(const char* expr, const char* file, int line, const std::string& msg);

}  // namespace pgkm

// Throws InputError(context, message...) unless `cond` holds.
#define PGKM_EXPECTS(cond, context, ...)                                            \
  do {                                                                              \
    if (!(cond)) throw ::pgkm::InputError((context), ::pgkm::str_cat(__VA_ARGS__)); \
  } while (0)

// Internal invariant: a failure is a bug in pgkm, so it aborts with the location.
#define PGKM_ASSERT(cond, ...)                                                                    \
  do {                                                                                            \
    if (!(cond)) ::pgkm::assert_fail(#cond, __FILE__, __LINE__, ::pgkm::str_cat("" __VA_ARGS__)); \
  } while (0)
