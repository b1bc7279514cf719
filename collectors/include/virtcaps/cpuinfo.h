// /proc/cpuinfo in all its per-architecture shapes (x86, arm64, ppc64, s390x).
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "virtcaps/status.h"

namespace virtcaps {

using CpuinfoBlock = std::map<std::string, std::string>;

struct Cpuinfo {
  // Blocks with a numeric "processor" (x86, arm64, ppc64, any case) or "cpu number"
  // (s390x) key, in order. Empty on single-CPU 32-bit Arm, SPARC and old s390x.
  std::vector<CpuinfoBlock> processors;
  // Every other key: s390x's header block, ppc64's trailer (platform, model, machine).
  CpuinfoBlock global;

  // The first processor's value for key, else the global one, else empty. Keys match
  // exactly first, then ignoring case ("Address Sizes" on LoongArch).
  std::string Get(const std::string& key) const;
};

// Strict: a non-empty line without "key : value" shape is an error naming its line,
// and so is a file with no keys at all.
Expected<Cpuinfo> ParseCpuinfo(std::string_view text);

}  // namespace virtcaps
