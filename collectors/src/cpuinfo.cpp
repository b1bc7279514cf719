#include "virtcaps/cpuinfo.h"

#include "virtcaps/strings.h"

namespace virtcaps {

namespace {

bool EqualsIgnoringCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() && ToLower(a) == ToLower(b);
}

// Exact key first; then any case ("Address Sizes" on LoongArch, "Processor" on old Arm).
const std::string* Find(const CpuinfoBlock& block, const std::string& key) {
  if (auto found = block.find(key); found != block.end()) return &found->second;
  for (const auto& [name, value] : block) {
    if (EqualsIgnoringCase(name, key)) return &value;
  }
  return nullptr;
}

// A block describes one processor when it carries "processor : N" (any case) or
// s390x's "cpu number". Old 32-bit Arm prints "Processor : ARMv7 ..." as a name.
bool IsProcessorBlock(const CpuinfoBlock& block) {
  if (block.count("cpu number")) return true;
  for (const auto& [name, value] : block) {
    if (EqualsIgnoringCase(name, "processor") && ParseUint(value)) return true;
  }
  return false;
}

}  // namespace

std::string Cpuinfo::Get(const std::string& key) const {
  if (!processors.empty()) {
    if (const std::string* value = Find(processors.front(), key)) return *value;
  }
  const std::string* value = Find(global, key);
  return value ? *value : std::string();
}

Expected<Cpuinfo> ParseCpuinfo(std::string_view text) {
  Cpuinfo cpuinfo;
  CpuinfoBlock block;
  auto flush = [&] {
    if (block.empty()) return;
    if (IsProcessorBlock(block)) {
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
  // Single-CPU 32-bit Arm, SPARC and old s390x kernels print no per-processor blocks:
  // what they print is kept, and the CPUs are counted from sysfs instead.
  if (cpuinfo.processors.empty() && cpuinfo.global.empty()) return Status::Error("empty file");
  return cpuinfo;
}

}  // namespace virtcaps
