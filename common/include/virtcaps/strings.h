// Strict, locale-independent string helpers for parsing kernel files.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace virtcaps {

std::string_view Trim(std::string_view text);
std::vector<std::string_view> Split(std::string_view text, char separator);
// Split's fields, each passed to visit(std::string_view) in order, without a vector
// (for request headers, which are parsed on every request).
template <typename Visit>
void ForEachField(std::string_view text, char separator, Visit visit) {
  while (true) {
    size_t end = text.find(separator);
    visit(text.substr(0, end));
    if (end == std::string_view::npos) return;
    text.remove_prefix(end + 1);
  }
}
// ASCII case-insensitive equality.
bool EqualsIgnoreCase(std::string_view a, std::string_view b);
// Splits on runs of spaces/tabs, dropping empty fields.
std::vector<std::string_view> SplitWhitespace(std::string_view text);
std::string ToLower(std::string_view text);
std::string JoinStrings(const std::vector<std::string>& items, std::string_view separator);

// Whole-string parses: leading/trailing junk or overflow gives nullopt.
std::optional<int64_t> ParseInt(std::string_view text);
std::optional<uint64_t> ParseUint(std::string_view text, int base = 10);
// "0x1f" or "1f" as hexadecimal.
std::optional<uint64_t> ParseHex(std::string_view text);
std::optional<double> ParseDouble(std::string_view text);

// Kernel cpu list syntax: "0-3,8,10-11" -> {0,1,2,3,8,10,11}. Empty text is an empty list.
std::optional<std::vector<unsigned>> ParseCpuList(std::string_view text);
// The inverse, in the kernel's compressed form.
std::string FormatCpuList(const std::vector<unsigned>& cpus);

// Text that both XML 1.0 and the Prometheus text format can carry, for every string
// that comes from outside the agent (host files, emulators): invalid UTF-8 (bad or
// overlong sequences, surrogates, past U+10FFFF), control characters (C0 but tab,
// newline and carriage return; DEL; C1) and U+FFFE/U+FFFF become U+FFFD; tab, newline
// and carriage return become a space. Clean text comes back unchanged.
std::string SanitizeText(std::string_view text);
// In place; true if anything changed.
bool SanitizeInPlace(std::string& text);

// Formats a double without locale influence ("0.001234").
std::string FormatDouble(double value);

}  // namespace virtcaps
