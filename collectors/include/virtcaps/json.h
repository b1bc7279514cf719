// A small, strict JSON reader (RFC 8259) for QMP replies: one value per call, no
// comments, no trailing commas, no duplicate keys, valid UTF-8 only. Errors name the
// byte offset where the input stops making sense. Nothing here throws.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "virtcaps/status.h"

namespace virtcaps {

class JsonValue {
 public:
  enum class Type { kNull, kBool, kNumber, kString, kArray, kObject };
  using Members = std::vector<std::pair<std::string, JsonValue>>;  // in document order

  JsonValue() = default;  // null
  static JsonValue Bool(bool value);
  // `integer` is set when the text was an integer that fits int64_t.
  static JsonValue Number(double value, std::optional<int64_t> integer);
  static JsonValue String(std::string value);
  static JsonValue Array(std::vector<JsonValue> items);
  static JsonValue Object(Members members);

  Type type() const { return type_; }
  bool is_null() const { return type_ == Type::kNull; }
  bool is_bool() const { return type_ == Type::kBool; }
  bool is_number() const { return type_ == Type::kNumber; }
  bool is_string() const { return type_ == Type::kString; }
  bool is_array() const { return type_ == Type::kArray; }
  bool is_object() const { return type_ == Type::kObject; }

  // Accessors answer with a neutral value (false, 0, empty) for the wrong type.
  bool bool_value() const { return type_ == Type::kBool && bool_; }
  double number() const { return type_ == Type::kNumber ? number_ : 0; }
  std::optional<int64_t> integer() const {
    return type_ == Type::kNumber ? integer_ : std::nullopt;
  }
  const std::string& string() const { return string_; }
  const std::vector<JsonValue>& items() const { return items_; }
  const Members& members() const { return members_; }

  // The member named `key` of an object; nullptr when absent or not an object.
  const JsonValue* Find(std::string_view key) const;

 private:
  Type type_ = Type::kNull;
  bool bool_ = false;
  double number_ = 0;
  std::optional<int64_t> integer_;
  std::string string_;
  std::vector<JsonValue> items_;
  Members members_;
};

struct JsonLimits {
  size_t max_bytes = 16u << 20;  // longer input is refused before parsing
  size_t max_depth = 64;         // nested arrays/objects deeper than this are refused
};

// Parses exactly one JSON value, optionally surrounded by white space.
// Errors read "offset N: what".
Expected<JsonValue> ParseJson(std::string_view text, JsonLimits limits = {});

// `text` as a JSON string literal, quotes included: quote, backslash and every control
// character (DEL too) escaped, so it is also one safe line of logfmt or a JSON log.
std::string QuoteJson(std::string_view text);

}  // namespace virtcaps
