// Test helper: whether an atomic writer (core/atomic_file.h) left a temporary file
// ("<path>.tmp-XXXXXXXX") next to `path`.
#pragma once

#include <filesystem>
#include <string>

namespace pgkm::testing {

inline bool has_temporary_next_to(const std::string& path) {
  const std::filesystem::path p(path);
  const std::filesystem::path dir = p.parent_path().empty() ? "." : p.parent_path();
  const std::string prefix = p.filename().string() + ".tmp";
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    if (entry.path().filename().string().starts_with(prefix)) return true;
  }
  return false;
}

}  // namespace pgkm::testing
