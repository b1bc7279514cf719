// ParseCpuidDump on arbitrary `cpuid -r` text. An accepted dump has leaves, and
// formatting its table back into the dump format parses to the same table.
#include <cinttypes>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "virtcaps/probes.h"

#include "fuzz_check.h"

namespace {

bool SameTable(const virtcaps::CpuidTable& a, const virtcaps::CpuidTable& b) {
  if (a.size() != b.size()) return false;
  for (auto i = a.begin(), j = b.begin(); i != a.end(); ++i, ++j) {
    if (i->first != j->first || i->second.eax != j->second.eax || i->second.ebx != j->second.ebx ||
        i->second.ecx != j->second.ecx || i->second.edx != j->second.edx) {
      return false;
    }
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto table = virtcaps::ParseCpuidDump(text);
  if (!table) {
    FUZZ_CHECK(!table.error().empty());
    return 0;
  }
  FUZZ_CHECK(!table->empty());
  std::string dump = "CPU 0:\n";
  for (const auto& [key, registers] : *table) {
    char line[128];
    std::snprintf(line, sizeof(line),
                  "   0x%08" PRIx32 " 0x%02" PRIx32 ": eax=0x%08" PRIx32 " ebx=0x%08" PRIx32
                  " ecx=0x%08" PRIx32 " edx=0x%08" PRIx32 "\n",
                  key.first, key.second, registers.eax, registers.ebx, registers.ecx,
                  registers.edx);
    dump += line;
  }
  auto again = virtcaps::ParseCpuidDump(dump);
  FUZZ_CHECK(again.ok());
  FUZZ_CHECK(SameTable(*table, *again));
  return 0;
}
