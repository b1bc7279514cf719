// The strict number parsers used on sysfs/procfs values and dump fields: ParseUint,
// ParseHex, ParseInt and ParseDouble. Accepted text is exactly a number (white space
// around it aside), and what they return formats back to text that parses the same.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "virtcaps/strings.h"

#include "fuzz_check.h"

namespace {

bool AllDigits(std::string_view text, int base) {
  if (text.empty()) return false;
  for (char c : text) {
    int digit = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'z' ? c - 'a' + 10
                : c >= 'A' && c <= 'Z' ? c - 'A' + 10
                                       : base;
    if (digit >= base) return false;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  std::string_view trimmed = virtcaps::Trim(text);

  for (int base : {10, 16, 8, 2}) {
    if (auto value = virtcaps::ParseUint(text, base)) {
      FUZZ_CHECK(AllDigits(trimmed, base));
      if (base == 10) FUZZ_CHECK(virtcaps::ParseUint(std::to_string(*value)) == value);
    }
  }

  if (auto value = virtcaps::ParseHex(text)) {
    std::string_view digits = trimmed;
    if (digits.size() > 2 && digits[0] == '0' && (digits[1] == 'x' || digits[1] == 'X')) {
      digits.remove_prefix(2);
    }
    FUZZ_CHECK(AllDigits(digits, 16));
    char formatted[32];
    std::snprintf(formatted, sizeof(formatted), "0x%llx", static_cast<unsigned long long>(*value));
    FUZZ_CHECK(virtcaps::ParseHex(formatted) == value);
  }

  if (auto value = virtcaps::ParseInt(text)) {
    std::string_view digits = trimmed;
    if (!digits.empty() && (digits[0] == '+' || digits[0] == '-')) digits.remove_prefix(1);
    FUZZ_CHECK(AllDigits(digits, 10));
    FUZZ_CHECK(virtcaps::ParseInt(std::to_string(*value)) == value);
  }

  if (auto value = virtcaps::ParseDouble(text)) {
    std::string formatted = virtcaps::FormatDouble(*value);
    auto again = virtcaps::ParseDouble(formatted);
    FUZZ_CHECK(again.has_value());
    FUZZ_CHECK(std::isnan(*value)
                   ? std::isnan(*again)
                   : *again == *value && std::signbit(*again) == std::signbit(*value));
  }
  return 0;
}
