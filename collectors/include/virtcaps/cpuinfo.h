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
  // Blocks with a "processor" (x86, arm64, ppc64) or "cpu number" (s390x) key, in order.
  std::vector<CpuinfoBlock> processors;
  // Every other key: s390x's header block, ppc64's trailer (platform, model, machine).
  CpuinfoBlock global;

  // The first processor's value for key, else the global one, else empty.
  std::string Get(const std::string& key) const;
};

// Strict: a non-empty line without "key : value" shape is an error naming its line.
Expected<Cpuinfo> ParseCpuinfo(std::string_view text);

}  // namespace virtcaps
