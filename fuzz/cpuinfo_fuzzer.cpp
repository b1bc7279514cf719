// ParseCpuinfo on arbitrary /proc/cpuinfo text. Checks the shape of what it accepts:
// processor blocks carry their marker key, keys and values are trimmed, keys are printable.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "virtcaps/cpuinfo.h"
#include "virtcaps/strings.h"

#include "fuzz_check.h"

namespace {

void CheckBlock(const virtcaps::CpuinfoBlock& block) {
  for (const auto& [key, value] : block) {
    FUZZ_CHECK(!key.empty());
    FUZZ_CHECK(virtcaps::Trim(key) == key);
    FUZZ_CHECK(virtcaps::Trim(value) == value);
    FUZZ_CHECK(key.find(':') == std::string::npos);
    for (char c : key) {
      FUZZ_CHECK(static_cast<unsigned char>(c) >= 0x20 && static_cast<unsigned char>(c) < 0x7f);
    }
    FUZZ_CHECK(value.find('\n') == std::string::npos);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto cpuinfo = virtcaps::ParseCpuinfo(text);
  if (!cpuinfo) {
    FUZZ_CHECK(!cpuinfo.error().empty());
    return 0;
  }
  FUZZ_CHECK(!cpuinfo->processors.empty() || !cpuinfo->global.empty());
  auto has_key_any_case = [](const virtcaps::CpuinfoBlock& block, std::string_view key) {
    for (const auto& entry : block) {
      if (virtcaps::ToLower(entry.first) == virtcaps::ToLower(key)) return true;
    }
    return false;
  };
  for (const auto& block : cpuinfo->processors) {
    FUZZ_CHECK(has_key_any_case(block, "processor") || block.count("cpu number") == 1);
    CheckBlock(block);
  }
  CheckBlock(cpuinfo->global);
  // Get prefers the first processor, then the global block; exact keys before other cases.
  // A key matched in another case may carry an empty value ("Flags\t:"), so an empty
  // answer is only wrong when every other-case match in the first processor has a value.
  auto any_case_value = [](const virtcaps::CpuinfoBlock& block, std::string_view key,
                           std::string_view value) {
    for (const auto& entry : block) {
      if (virtcaps::ToLower(entry.first) == virtcaps::ToLower(key) && entry.second == value) {
        return true;
      }
    }
    return false;
  };
  for (const char* key : {"processor", "vendor_id", "flags", "model name", "cpu"}) {
    std::string value = cpuinfo->Get(key);
    if (!cpuinfo->processors.empty() && cpuinfo->processors.front().count(key)) {
      FUZZ_CHECK(value == cpuinfo->processors.front().at(key));
    } else if (!cpuinfo->processors.empty() && has_key_any_case(cpuinfo->processors.front(), key)) {
      FUZZ_CHECK(any_case_value(cpuinfo->processors.front(), key, value));
    } else if (cpuinfo->processors.empty() && cpuinfo->global.count(key)) {
      FUZZ_CHECK(value == cpuinfo->global.at(key));
    }
  }
  return 0;
}
