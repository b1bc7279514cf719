// ParseCpuList on arbitrary sysfs cpu list text ("0-3,8,10-11"). An accepted list is
// sorted and unique, and FormatCpuList of it parses back to the same list.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "virtcaps/strings.h"

#include "fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto cpus = virtcaps::ParseCpuList(text);
  if (!cpus) return 0;
  FUZZ_CHECK(std::adjacent_find(cpus->begin(), cpus->end(),
                                [](unsigned a, unsigned b) { return a >= b; }) == cpus->end());
  FUZZ_CHECK(cpus->empty() == virtcaps::Trim(text).empty());
  std::string formatted = virtcaps::FormatCpuList(*cpus);
  auto again = virtcaps::ParseCpuList(formatted);
  FUZZ_CHECK(again.has_value());
  FUZZ_CHECK(*again == *cpus);
  FUZZ_CHECK(virtcaps::FormatCpuList(*again) == formatted);
  return 0;
}
