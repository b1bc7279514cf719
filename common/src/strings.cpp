#include "virtcaps/strings.h"

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <utility>

namespace virtcaps {

namespace {
bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v'; }
}  // namespace

std::string_view Trim(std::string_view text) {
  while (!text.empty() && IsSpace(text.front())) text.remove_prefix(1);
  while (!text.empty() && IsSpace(text.back())) text.remove_suffix(1);
  return text;
}

std::vector<std::string_view> Split(std::string_view text, char separator) {
  std::vector<std::string_view> parts;
  ForEachField(text, separator, [&](std::string_view part) { parts.push_back(part); });
  return parts;
}

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; };
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

std::vector<std::string_view> SplitWhitespace(std::string_view text) {
  std::vector<std::string_view> parts;
  size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && IsSpace(text[i])) ++i;
    size_t start = i;
    while (i < text.size() && !IsSpace(text[i])) ++i;
    if (i > start) parts.push_back(text.substr(start, i - start));
  }
  return parts;
}

std::string ToLower(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

std::string JoinStrings(const std::vector<std::string>& items, std::string_view separator) {
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) {
    if (i > 0) out += separator;
    out += items[i];
  }
  return out;
}

std::optional<int64_t> ParseInt(std::string_view text) {
  text = Trim(text);
  if (!text.empty() && text.front() == '+') {
    text.remove_prefix(1);
    if (!text.empty() && text.front() == '-') return std::nullopt;  // "+-1"
  }
  int64_t value = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc() || ptr != text.data() + text.size()) return std::nullopt;
  return value;
}

std::optional<uint64_t> ParseUint(std::string_view text, int base) {
  text = Trim(text);
  uint64_t value = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value, base);
  if (text.empty() || ec != std::errc() || ptr != text.data() + text.size()) return std::nullopt;
  return value;
}

std::optional<uint64_t> ParseHex(std::string_view text) {
  text = Trim(text);
  if (text.size() > 2 && text[0] == '0' && (text[1] == 'x' || text[1] == 'X'))
    text.remove_prefix(2);
  if (!text.empty() && IsSpace(text.front())) return std::nullopt;  // "0x 1f"
  return ParseUint(text, 16);
}

std::optional<double> ParseDouble(std::string_view text) {
  text = Trim(text);
  double value = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc() || ptr != text.data() + text.size()) return std::nullopt;
  return value;
}

std::optional<std::vector<unsigned>> ParseCpuList(std::string_view text) {
  // Bounds the list so a garbled "0-4294967295" cannot allocate gigabytes.
  constexpr uint64_t kMaxCpuId = 1u << 20;
  // Ranges are merged before they are expanded, so a list repeating "0-1048576" costs
  // one expansion, not one per repetition.
  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  text = Trim(text);
  if (text.empty()) return std::vector<unsigned>{};
  for (std::string_view part : Split(text, ',')) {
    auto range = Split(part, '-');
    if (range.size() == 1) {
      auto cpu = ParseUint(range[0]);
      if (!cpu || *cpu > kMaxCpuId) return std::nullopt;
      ranges.emplace_back(*cpu, *cpu);
    } else if (range.size() == 2) {
      auto first = ParseUint(range[0]);
      auto last = ParseUint(range[1]);
      if (!first || !last || *first > *last || *last > kMaxCpuId) return std::nullopt;
      ranges.emplace_back(*first, *last);
    } else {
      return std::nullopt;
    }
  }
  std::sort(ranges.begin(), ranges.end());
  std::vector<unsigned> cpus;
  for (auto [first, last] : ranges) {
    // Sorted by start, so everything up to cpus.back() is already in.
    if (!cpus.empty()) first = std::max<uint64_t>(first, uint64_t{cpus.back()} + 1);
    for (uint64_t cpu = first; cpu <= last; ++cpu) cpus.push_back(static_cast<unsigned>(cpu));
  }
  return cpus;
}

std::string FormatCpuList(const std::vector<unsigned>& cpus) {
  std::vector<unsigned> sorted = cpus;
  std::sort(sorted.begin(), sorted.end());
  sorted.erase(std::unique(sorted.begin(), sorted.end()), sorted.end());
  std::string out;
  for (size_t i = 0; i < sorted.size();) {
    size_t j = i;
    while (j + 1 < sorted.size() && sorted[j + 1] == sorted[j] + 1) ++j;
    if (!out.empty()) out += ',';
    out += std::to_string(sorted[i]);
    if (j > i) out += '-' + std::to_string(sorted[j]);
    i = j + 1;
  }
  return out;
}

std::string FormatDouble(double value) {
  char buffer[64];
  auto [ptr, ec] = std::to_chars(buffer, buffer + sizeof(buffer), value);
  if (ec != std::errc()) return "NaN";
  return std::string(buffer, ptr);
}

namespace {

constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD

// Length of the well-formed UTF-8 sequence at text[at] (0 if malformed: a stray or
// missing continuation byte, an overlong form, a surrogate, past U+10FFFF), and
// whether XML 1.0 and the Prometheus format may carry that character as it is.
size_t SequenceLength(std::string_view text, size_t at, bool& allowed) {
  auto byte = [&](size_t i) { return static_cast<unsigned char>(text[at + i]); };
  unsigned char lead = byte(0);
  allowed = false;
  if (lead < 0x80) {
    allowed = lead >= 0x20 && lead != 0x7F;
    return 1;
  }
  size_t length;
  uint32_t code;
  if (lead >= 0xC2 && lead <= 0xDF) {
    length = 2, code = lead & 0x1F;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    length = 3, code = lead & 0x0F;
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    length = 4, code = lead & 0x07;
  } else {
    return 0;  // a continuation byte, an overlong lead (C0, C1) or F5..FF
  }
  if (at + length > text.size()) return 0;
  for (size_t i = 1; i < length; ++i) {
    if ((byte(i) & 0xC0) != 0x80) return 0;
    code = (code << 6) | (byte(i) & 0x3F);
  }
  if ((length == 3 && code < 0x800) || (length == 4 && code < 0x10000)) return 0;  // overlong
  if (code > 0x10FFFF || (code >= 0xD800 && code <= 0xDFFF)) return 0;
  // C1 controls and the two BMP noncharacters XML 1.0 excludes.
  allowed = !(code >= 0x80 && code <= 0x9F) && code != 0xFFFE && code != 0xFFFF;
  return length;
}

// Bytes from text[at] on that are printable ASCII (0x20..0x7E), eight at a time: nearly
// all of the model's text is, and a refresh checks a few thousand strings.
size_t PrintableAsciiPrefix(std::string_view text, size_t at) {
  constexpr uint64_t kOnes = 0x0101010101010101ull;
  constexpr uint64_t kHighBits = 0x8080808080808080ull;
  while (at + 8 <= text.size()) {
    uint64_t word;
    std::memcpy(&word, text.data() + at, sizeof(word));
    // A byte with its high bit set, below 0x20 (borrows past bit 7 when 0x20 is taken
    // from it) or equal to 0x7F (zero after the XOR) sets its high bit here.
    uint64_t below_space = (word - 0x20 * kOnes) & ~word;
    uint64_t delete_byte = ((word ^ (0x7F * kOnes)) - kOnes) & ~(word ^ (0x7F * kOnes));
    if (((word | below_space | delete_byte) & kHighBits) != 0) break;
    at += 8;
  }
  while (at < text.size()) {
    auto byte = static_cast<unsigned char>(text[at]);
    if (byte < 0x20 || byte >= 0x7F) break;
    ++at;
  }
  return at;
}

}  // namespace

bool SanitizeInPlace(std::string& text) {
  size_t at = PrintableAsciiPrefix(text, 0);
  if (at == text.size()) return false;
  bool allowed = true;
  while (at < text.size()) {  // nothing to do yet, no copy
    size_t length = SequenceLength(text, at, allowed);
    if (length == 0 || !allowed) break;
    at += length;
  }
  if (at == text.size()) return false;
  std::string clean = text.substr(0, at);
  while (at < text.size()) {
    size_t length = SequenceLength(text, at, allowed);
    if (length > 0 && allowed) {
      clean.append(text, at, length);
    } else if (length == 1 && (text[at] == '\t' || text[at] == '\n' || text[at] == '\r')) {
      clean += ' ';
    } else {
      clean += kReplacement;  // one for a disallowed character, one per malformed byte
    }
    at += length > 0 ? length : 1;
  }
  text = std::move(clean);
  return true;
}

std::string SanitizeText(std::string_view text) {
  std::string copy(text);
  SanitizeInPlace(copy);
  return copy;
}

}  // namespace virtcaps
