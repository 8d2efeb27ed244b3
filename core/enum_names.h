// Names of an enum's members, for options, files and messages: one table per enum gives
// both directions, so a name and its parser cannot disagree.
#pragma once

#include <array>
#include <cstddef>
#include <optional>
#include <string_view>
#include <utility>

namespace pgkm {

template <typename Enum, size_t N>
struct EnumNames {
  std::array<std::pair<Enum, const char*>, N> entries;

  // The member's name; "?" for a value outside the table.
  constexpr const char* name(Enum value) const {
    for (const auto& [v, text] : entries) {
      if (v == value) return text;
    }
    return "?";
  }
  // The member named `text`, or nullopt.
  constexpr std::optional<Enum> parse(std::string_view text) const {
    for (const auto& [v, name] : entries) {
      if (text == name) return v;
    }
    return std::nullopt;
  }
};

}  // namespace pgkm
