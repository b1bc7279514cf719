// ParseJson, the strict reader for QMP replies, on arbitrary bytes. Errors name an
// offset; an accepted value, written back out as JSON (strings with QuoteJson),
// parses to the same value.
#include <charconv>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "virtcaps/json.h"

#include "fuzz_check.h"

namespace {

using virtcaps::JsonValue;

void Write(const JsonValue& value, std::string& out) {
  switch (value.type()) {
    case JsonValue::Type::kNull:
      out += "null";
      return;
    case JsonValue::Type::kBool:
      out += value.bool_value() ? "true" : "false";
      return;
    case JsonValue::Type::kNumber: {
      if (value.integer()) {
        out += std::to_string(*value.integer());
        return;
      }
      char buffer[64];
      auto [end, error] = std::to_chars(buffer, buffer + sizeof(buffer), value.number());
      FUZZ_CHECK(error == std::errc());
      std::string_view text(buffer, static_cast<size_t>(end - buffer));
      out += text;
      // Keep a non-integer (or too large) number from reading back as an integer.
      if (text.find_first_of(".eE") == std::string_view::npos) out += ".0";
      return;
    }
    case JsonValue::Type::kString:
      out += virtcaps::QuoteJson(value.string());
      return;
    case JsonValue::Type::kArray:
      out += '[';
      for (size_t i = 0; i < value.items().size(); ++i) {
        if (i > 0) out += ',';
        Write(value.items()[i], out);
      }
      out += ']';
      return;
    case JsonValue::Type::kObject:
      out += '{';
      for (size_t i = 0; i < value.members().size(); ++i) {
        if (i > 0) out += ',';
        out += virtcaps::QuoteJson(value.members()[i].first);
        out += ':';
        Write(value.members()[i].second, out);
      }
      out += '}';
      return;
  }
}

bool Same(const JsonValue& a, const JsonValue& b) {
  if (a.type() != b.type()) return false;
  switch (a.type()) {
    case JsonValue::Type::kNull:
      return true;
    case JsonValue::Type::kBool:
      return a.bool_value() == b.bool_value();
    case JsonValue::Type::kNumber:
      return a.number() == b.number() && a.integer() == b.integer();
    case JsonValue::Type::kString:
      return a.string() == b.string();
    case JsonValue::Type::kArray:
      if (a.items().size() != b.items().size()) return false;
      for (size_t i = 0; i < a.items().size(); ++i) {
        if (!Same(a.items()[i], b.items()[i])) return false;
      }
      return true;
    case JsonValue::Type::kObject:
      if (a.members().size() != b.members().size()) return false;
      for (size_t i = 0; i < a.members().size(); ++i) {
        if (a.members()[i].first != b.members()[i].first ||
            !Same(a.members()[i].second, b.members()[i].second)) {
          return false;
        }
      }
      return true;
  }
  return false;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto value = virtcaps::ParseJson(text);
  // The depth limit's paths too: a limit of 0..3 only ever refuses what the default accepts.
  virtcaps::JsonLimits tight;
  tight.max_depth = size % 4;
  auto limited = virtcaps::ParseJson(text, tight);
  if (limited) FUZZ_CHECK(value.ok() && Same(*limited, *value));
  if (!limited) FUZZ_CHECK(limited.error().rfind("offset ", 0) == 0);
  if (!value) {
    FUZZ_CHECK(value.error().rfind("offset ", 0) == 0);
    return 0;
  }
  if (value->is_number()) FUZZ_CHECK(std::isfinite(value->number()));
  std::string written;
  Write(*value, written);
  auto again = virtcaps::ParseJson(written);
  if (!again)
    std::fprintf(stderr, "rewritten '%s' fails: %s\n", written.c_str(), again.error().c_str());
  FUZZ_CHECK(again.ok());
  FUZZ_CHECK(Same(*value, *again));
  return 0;
}
