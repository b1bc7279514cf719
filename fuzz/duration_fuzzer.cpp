// ParseDuration on arbitrary text ("1h30m", "250ms"). An accepted duration is within
// 0..365d, and FormatDuration of it parses back to the same duration.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "virtcaps/config.h"

#include "fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto duration = virtcaps::ParseDuration(text);
  if (!duration) return 0;
  FUZZ_CHECK(duration->count() >= 0);
  FUZZ_CHECK(*duration <= std::chrono::hours(24 * 365));
  std::string formatted = virtcaps::FormatDuration(*duration);
  auto again = virtcaps::ParseDuration(formatted);
  if (!again || *again != *duration) {
    std::fprintf(stderr, "'%.*s' = %lld ms formats as '%s', which parses as %lld\n",
                 static_cast<int>(text.size()), text.data(),
                 static_cast<long long>(duration->count()), formatted.c_str(),
                 again ? static_cast<long long>(again->count()) : -1LL);
  }
  FUZZ_CHECK(again.has_value());
  FUZZ_CHECK(*again == *duration);
  FUZZ_CHECK(virtcaps::FormatDuration(*again) == formatted);
  return 0;
}
