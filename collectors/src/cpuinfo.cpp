#include "virtcaps/cpuinfo.h"

#include "virtcaps/strings.h"

namespace virtcaps {

std::string Cpuinfo::Get(const std::string& key) const {
  if (!processors.empty()) {
    auto found = processors.front().find(key);
    if (found != processors.front().end()) return found->second;
  }
  auto found = global.find(key);
  return found == global.end() ? std::string() : found->second;
}

Expected<Cpuinfo> ParseCpuinfo(std::string_view text) {
  Cpuinfo cpuinfo;
  CpuinfoBlock block;
  auto flush = [&] {
    if (block.empty()) return;
    if (block.count("processor") || block.count("cpu number")) {
      cpuinfo.processors.push_back(std::move(block));
    } else {
      for (auto& [key, value] : block) cpuinfo.global[key] = std::move(value);
    }
    block.clear();
  };
  int line_number = 0;
  for (std::string_view line : Split(text, '\n')) {
    ++line_number;
    if (Trim(line).empty()) {
      flush();
      continue;
    }
    size_t colon = line.find(':');
    std::string key(Trim(line.substr(0, colon == std::string_view::npos ? 0 : colon)));
    if (colon == std::string_view::npos || key.empty()) {
      return Status::Error("line " + std::to_string(line_number) +
                           ": expected 'key : value', got '" +
                           std::string(Trim(line)).substr(0, 60) + "'");
    }
    for (char c : key) {
      if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7f) {
        return Status::Error("line " + std::to_string(line_number) + ": unprintable key");
      }
    }
    block[key] = std::string(Trim(line.substr(colon + 1)));
  }
  flush();
  // Old s390x kernels print only the header block; anything else needs processors.
  if (cpuinfo.processors.empty() && !cpuinfo.global.count("# processors")) {
    return Status::Error("no processor entries");
  }
  return cpuinfo;
}

}  // namespace virtcaps
