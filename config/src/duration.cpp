#include <cctype>
#include <string>

#include "virtcaps/config.h"

namespace virtcaps {

std::optional<Duration> ParseDuration(std::string_view text) {
  // Prometheus-style: a sequence of <integer><unit>, units from largest to smallest.
  struct Unit {
    std::string_view suffix;
    int64_t milliseconds;
  };
  static constexpr Unit kUnits[] = {
      {"d", 86'400'000}, {"h", 3'600'000}, {"m", 60'000}, {"s", 1'000}, {"ms", 1}};
  constexpr int64_t kMaxMilliseconds = int64_t{365} * 86'400'000;
  if (text.empty()) return std::nullopt;
  int64_t total = 0;
  size_t last_unit = 0;  // index into kUnits + 1 of the previous unit, to enforce order
  size_t i = 0;
  while (i < text.size()) {
    size_t digits_start = i;
    int64_t number = 0;
    while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) {
      number = number * 10 + (text[i] - '0');
      // One number may span the whole range: FormatDuration writes durations that are
      // not whole seconds in ms alone. The cap also keeps number * unit from overflowing.
      if (number > kMaxMilliseconds) return std::nullopt;
      ++i;
    }
    if (i == digits_start) return std::nullopt;
    size_t unit_start = i;
    while (i < text.size() && std::isalpha(static_cast<unsigned char>(text[i]))) ++i;
    std::string_view suffix = text.substr(unit_start, i - unit_start);
    size_t unit_index = 0;
    while (unit_index < std::size(kUnits) && kUnits[unit_index].suffix != suffix) ++unit_index;
    if (unit_index == std::size(kUnits) || unit_index + 1 <= last_unit) return std::nullopt;
    last_unit = unit_index + 1;
    total += number * kUnits[unit_index].milliseconds;
    if (total > kMaxMilliseconds) return std::nullopt;
  }
  return Duration(total);
}

std::string FormatDuration(Duration duration) {
  int64_t ms = duration.count();
  if (ms == 0) return "0s";
  if (ms % 1000 != 0) return std::to_string(ms) + "ms";
  int64_t seconds = ms / 1000;
  std::string out;
  if (seconds >= 3600) {
    out += std::to_string(seconds / 3600) + "h";
    seconds %= 3600;
  }
  if (seconds >= 60) {
    out += std::to_string(seconds / 60) + "m";
    seconds %= 60;
  }
  if (seconds > 0) out += std::to_string(seconds) + "s";
  return out;
}

}  // namespace virtcaps
