#include "io/model_folder.h"

#include <stdlib.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <set>
#include <system_error>

#include "core/atomic_file.h"
#include "core/errors.h"

namespace pgkm::io {
namespace {

namespace fs = std::filesystem;
constexpr const char* kIndexName = "model.safetensors.index.json";

// A fresh temporary directory next to the final one; removed on destruction unless kept.
class TempDir {
 public:
  explicit TempDir(const std::string& final_dir) {
    std::string pattern = final_dir + ".tmp-XXXXXX";
    if (mkdtemp(pattern.data()) == nullptr) {
      throw SystemError(str_cat(final_dir, ": mkdtemp failed: ", std::strerror(errno)));
    }
    path_ = pattern;
    // mkdtemp makes it private (0700); the folder gets the mode a plain mkdir would.
    const mode_t mask = umask(0);
    umask(mask);
    if (chmod(path_.c_str(), 0777 & ~mask) != 0) {
      throw SystemError(str_cat(path_, ": chmod failed: ", std::strerror(errno)));
    }
  }
  ~TempDir() {
    if (path_.empty()) return;
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  void release() { path_.clear(); }

 private:
  std::string path_;
};

void write_file(const std::string& root, const std::string& rel, std::span<const std::byte> data) {
  const fs::path target = fs::path(root) / rel;
  std::error_code ec;
  fs::create_directories(target.parent_path(), ec);
  if (ec)
    throw SystemError(
        str_cat("create directory ", target.parent_path().string(), ": ", ec.message()));
  AtomicFile out(target.string());
  out.write(data);
  out.commit();
}

std::string strip_trailing_slashes(std::string dir) {
  while (dir.size() > 1 && dir.back() == '/')
    dir.pop_back();
  return dir;
}

}  // namespace

uint64_t write_model_folder(const std::string& out_dir, const ModelFolder& folder) {
  const std::string dir = strip_trailing_slashes(out_dir);
  std::error_code ec;
  if (fs::exists(dir, ec)) {
    PGKM_EXPECTS(fs::is_directory(dir, ec) && fs::is_empty(dir, ec), dir,
                 "the output folder exists and is not empty; give a new or empty folder");
  }
  // Names must not collide: a recorded file called like a shard or the index loses.
  std::set<std::string> names;
  for (const FolderShard& s : folder.shards)
    PGKM_EXPECTS(names.insert(s.file).second, dir, "shard '", s.file, "' is given twice");
  if (folder.index_metadata) names.insert(kIndexName);
  for (const SourceFile& f : folder.files) {
    check_relative_path(f.path, dir);
    PGKM_EXPECTS(names.insert(f.path).second, dir, "file '", f.path,
                 "' would be written twice (it is also a weight file)");
  }

  TempDir tmp(dir);
  for (const SourceFile& f : folder.files) {
    write_file(tmp.path(), f.path, std::as_bytes(std::span(f.bytes)));
  }
  nlohmann::json weight_map = nlohmann::json::object();
  uint64_t total_size = 0;
  for (const FolderShard& s : folder.shards) {
    write_safetensors((fs::path(tmp.path()) / s.file).string(), s.tensors, s.metadata);
    for (const OutTensor& t : s.tensors) {
      weight_map[t.name] = s.file;
      total_size += t.data.size();
    }
  }
  if (folder.index_metadata) {
    nlohmann::json metadata =
        folder.index_metadata->is_object() ? *folder.index_metadata : nlohmann::json::object();
    metadata["total_size"] = total_size;
    const nlohmann::json index = {{"metadata", metadata}, {"weight_map", weight_map}};
    const std::string text = index.dump(2) + "\n";
    write_file(tmp.path(), kIndexName, std::as_bytes(std::span(text.data(), text.size())));
  }
  fsync_directory(tmp.path());
  if (fs::exists(dir, ec)) fs::remove(dir, ec);  // the empty folder checked above
  if (std::rename(tmp.path().c_str(), dir.c_str()) != 0) {
    throw SystemError(str_cat("rename ", tmp.path(), " to ", dir, ": ", std::strerror(errno)));
  }
  tmp.release();
  fsync_directory(parent_directory(dir));
  return folder_bytes(dir);
}

uint64_t folder_bytes(const std::string& dir) {
  uint64_t total = 0;
  std::error_code ec;
  for (const auto& e : fs::recursive_directory_iterator(dir, ec)) {
    if (e.is_regular_file(ec)) total += e.file_size(ec);
  }
  return total;
}

}  // namespace pgkm::io
