// Small readers for kernel parameter files shared by several collectors.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "virtcaps/files.h"
#include "virtcaps/status.h"
#include "virtcaps/strings.h"

namespace virtcaps {

// Module parameters print Y/N on some kernels and 1/0 on others.
inline Expected<bool> ReadBoolParameter(const std::string& path) {
  auto text = ReadValue(path);
  if (!text) return text.status();
  if (*text == "Y" || *text == "y" || *text == "1") return true;
  if (*text == "N" || *text == "n" || *text == "0") return false;
  return Status::Error(path + ": expected Y, N, 1 or 0, got '" + text->substr(0, 20) + "'");
}

// The huge page size directories under `dir` ("hugepages-2048kB"), as (size in KiB,
// full path), ascending. A missing `dir` is no huge pages; a garbled size is an error.
inline Expected<std::vector<std::pair<uint64_t, std::string>>> ListHugePageDirs(
    const std::string& dir) {
  std::vector<std::pair<uint64_t, std::string>> sizes;
  auto entries = ListDirectory(dir);
  if (!entries) {
    if (!IsDirectory(dir)) return sizes;  // asked only when the listing fails
    return entries.status();
  }
  for (const std::string& entry : *entries) {
    if (entry.rfind("hugepages-", 0) != 0) continue;
    std::string_view number = std::string_view(entry).substr(10);
    auto size = number.size() > 2 && number.substr(number.size() - 2) == "kB"
                    ? ParseUint(number.substr(0, number.size() - 2))
                    : std::nullopt;
    if (!size) return Status::Error(dir + "/" + entry + ": bad huge page size");
    sizes.emplace_back(*size, dir + "/" + entry);
  }
  std::sort(sizes.begin(), sizes.end());
  return sizes;
}

}  // namespace virtcaps
