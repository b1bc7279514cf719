#include "virtcaps/json.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <exception>
#include <system_error>

namespace virtcaps {

JsonValue JsonValue::Bool(bool value) {
  JsonValue v;
  v.type_ = Type::kBool;
  v.bool_ = value;
  return v;
}

JsonValue JsonValue::Number(double value, std::optional<int64_t> integer) {
  JsonValue v;
  v.type_ = Type::kNumber;
  v.number_ = value;
  v.integer_ = integer;
  return v;
}

JsonValue JsonValue::String(std::string value) {
  JsonValue v;
  v.type_ = Type::kString;
  v.string_ = std::move(value);
  return v;
}

JsonValue JsonValue::Array(std::vector<JsonValue> items) {
  JsonValue v;
  v.type_ = Type::kArray;
  v.items_ = std::move(items);
  return v;
}

JsonValue JsonValue::Object(Members members) {
  JsonValue v;
  v.type_ = Type::kObject;
  v.members_ = std::move(members);
  return v;
}

const JsonValue* JsonValue::Find(std::string_view key) const {
  if (type_ != Type::kObject) return nullptr;
  for (const auto& [name, value] : members_) {
    if (name == key) return &value;
  }
  return nullptr;
}

namespace {

void AppendUtf8(std::string& out, uint32_t code_point) {
  if (code_point < 0x80) {
    out += static_cast<char>(code_point);
  } else if (code_point < 0x800) {
    out += static_cast<char>(0xC0 | (code_point >> 6));
    out += static_cast<char>(0x80 | (code_point & 0x3F));
  } else if (code_point < 0x10000) {
    out += static_cast<char>(0xE0 | (code_point >> 12));
    out += static_cast<char>(0x80 | ((code_point >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (code_point & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (code_point >> 18));
    out += static_cast<char>(0x80 | ((code_point >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((code_point >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (code_point & 0x3F));
  }
}

// Recursive descent over the input; the first error wins and stops the parse.
class Parser {
 public:
  Parser(std::string_view text, const JsonLimits& limits) : text_(text), limits_(limits) {}

  Expected<JsonValue> ParseDocument() {
    SkipWhitespace();
    JsonValue value;
    if (!ParseValue(value, 0)) return Status::Error(error_);
    SkipWhitespace();
    if (pos_ != text_.size()) {
      Fail("unexpected data after the value");
      return Status::Error(error_);
    }
    return value;
  }

 private:
  bool Fail(std::string what) { return FailAt(pos_, std::move(what)); }
  bool FailAt(size_t offset, std::string what) {
    error_ = "offset " + std::to_string(offset) + ": " + std::move(what);
    return false;
  }
  bool AtEnd() const { return pos_ >= text_.size(); }
  char Peek() const { return text_[pos_]; }

  void SkipWhitespace() {
    while (!AtEnd() && (Peek() == ' ' || Peek() == '\t' || Peek() == '\n' || Peek() == '\r')) {
      ++pos_;
    }
  }

  bool ParseValue(JsonValue& out, size_t depth) {
    if (AtEnd()) return Fail("unexpected end of input, expected a value");
    switch (Peek()) {
      case '{':
        return ParseObject(out, depth + 1);
      case '[':
        return ParseArray(out, depth + 1);
      case '"': {
        std::string text;
        if (!ParseString(text)) return false;
        out = JsonValue::String(std::move(text));
        return true;
      }
      case 't':
        return ParseLiteral("true", JsonValue::Bool(true), out);
      case 'f':
        return ParseLiteral("false", JsonValue::Bool(false), out);
      case 'n':
        return ParseLiteral("null", JsonValue(), out);
      default:
        if (Peek() == '-' || (Peek() >= '0' && Peek() <= '9')) return ParseNumber(out);
        return Fail(std::string("unexpected character ") + Describe(Peek()));
    }
  }

  static std::string Describe(char c) {
    auto byte = static_cast<unsigned char>(c);
    if (byte >= 0x20 && byte < 0x7F) return std::string("'") + c + "'";
    static const char kHex[] = "0123456789abcdef";
    return std::string("byte 0x") + kHex[byte >> 4] + kHex[byte & 0xF];
  }

  bool ParseLiteral(std::string_view word, JsonValue value, JsonValue& out) {
    if (text_.substr(pos_, word.size()) != word) {
      return Fail("invalid literal, expected '" + std::string(word) + "'");
    }
    pos_ += word.size();
    out = std::move(value);
    return true;
  }

  bool ParseObject(JsonValue& out, size_t depth) {
    if (depth > limits_.max_depth) {
      return Fail("nesting deeper than " + std::to_string(limits_.max_depth));
    }
    size_t open = pos_;
    ++pos_;  // '{'
    JsonValue::Members members;
    SkipWhitespace();
    if (!AtEnd() && Peek() == '}') {
      ++pos_;
      out = JsonValue::Object(std::move(members));
      return true;
    }
    while (true) {
      SkipWhitespace();
      if (AtEnd()) return Fail("unexpected end of input in an object");
      if (Peek() != '"') return Fail("expected a member name string");
      std::string key;
      if (!ParseString(key)) return false;
      SkipWhitespace();
      if (AtEnd() || Peek() != ':') return Fail("expected ':' after a member name");
      ++pos_;
      SkipWhitespace();
      JsonValue value;
      if (!ParseValue(value, depth)) return false;
      members.emplace_back(std::move(key), std::move(value));
      SkipWhitespace();
      if (AtEnd()) return Fail("unexpected end of input in an object");
      if (Peek() == ',') {
        ++pos_;
        continue;
      }
      if (Peek() == '}') {
        ++pos_;
        if (!CheckUniqueNames(members, open)) return false;
        out = JsonValue::Object(std::move(members));
        return true;
      }
      return Fail("expected ',' or '}' in an object");
    }
  }

  // Sorting keeps this O(n log n) for objects with many members.
  bool CheckUniqueNames(const JsonValue::Members& members, size_t open) {
    std::vector<std::string_view> names;
    names.reserve(members.size());
    for (const auto& member : members) names.push_back(member.first);
    std::sort(names.begin(), names.end());
    auto duplicate = std::adjacent_find(names.begin(), names.end());
    if (duplicate == names.end()) return true;
    return FailAt(open, "duplicate member name \"" + std::string(*duplicate) + "\" in an object");
  }

  bool ParseArray(JsonValue& out, size_t depth) {
    if (depth > limits_.max_depth) {
      return Fail("nesting deeper than " + std::to_string(limits_.max_depth));
    }
    ++pos_;  // '['
    std::vector<JsonValue> items;
    SkipWhitespace();
    if (!AtEnd() && Peek() == ']') {
      ++pos_;
      out = JsonValue::Array(std::move(items));
      return true;
    }
    while (true) {
      SkipWhitespace();
      JsonValue value;
      if (!ParseValue(value, depth)) return false;
      items.push_back(std::move(value));
      SkipWhitespace();
      if (AtEnd()) return Fail("unexpected end of input in an array");
      if (Peek() == ',') {
        ++pos_;
        continue;
      }
      if (Peek() == ']') {
        ++pos_;
        out = JsonValue::Array(std::move(items));
        return true;
      }
      return Fail("expected ',' or ']' in an array");
    }
  }

  // Four hex digits after "\u"; pos_ is at the first digit.
  bool ParseHex4(uint32_t& value) {
    if (pos_ + 4 > text_.size()) return Fail("truncated \\u escape");
    value = 0;
    for (int i = 0; i < 4; ++i) {
      char c = text_[pos_];
      uint32_t digit = 0;
      if (c >= '0' && c <= '9') {
        digit = static_cast<uint32_t>(c - '0');
      } else if (c >= 'a' && c <= 'f') {
        digit = static_cast<uint32_t>(c - 'a' + 10);
      } else if (c >= 'A' && c <= 'F') {
        digit = static_cast<uint32_t>(c - 'A' + 10);
      } else {
        return Fail("invalid hex digit in a \\u escape");
      }
      value = value * 16 + digit;
      ++pos_;
    }
    return true;
  }

  bool ParseEscape(std::string& out) {
    size_t escape_offset = pos_;
    ++pos_;  // '\'
    if (AtEnd()) return Fail("unexpected end of input in an escape");
    char c = Peek();
    ++pos_;
    switch (c) {
      case '"':
        out += '"';
        return true;
      case '\\':
        out += '\\';
        return true;
      case '/':
        out += '/';
        return true;
      case 'b':
        out += '\b';
        return true;
      case 'f':
        out += '\f';
        return true;
      case 'n':
        out += '\n';
        return true;
      case 'r':
        out += '\r';
        return true;
      case 't':
        out += '\t';
        return true;
      case 'u':
        break;
      default:
        return FailAt(escape_offset, std::string("invalid escape \\") + Describe(c));
    }
    uint32_t unit = 0;
    if (!ParseHex4(unit)) return false;
    if (unit >= 0xDC00 && unit <= 0xDFFF) {
      return FailAt(escape_offset, "lone low surrogate in a \\u escape");
    }
    if (unit >= 0xD800 && unit <= 0xDBFF) {
      if (text_.substr(pos_, 2) != "\\u") {
        return FailAt(escape_offset, "high surrogate without a following low surrogate");
      }
      pos_ += 2;
      uint32_t low = 0;
      if (!ParseHex4(low)) return false;
      if (low < 0xDC00 || low > 0xDFFF) {
        return FailAt(escape_offset, "high surrogate without a following low surrogate");
      }
      unit = 0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00);
    }
    AppendUtf8(out, unit);
    return true;
  }

  // One UTF-8 encoded character (not ASCII); rejects overlong forms, surrogates and
  // code points above U+10FFFF.
  bool CopyUtf8(std::string& out) {
    size_t start = pos_;
    auto lead = static_cast<unsigned char>(text_[pos_]);
    size_t length;
    uint32_t code_point;
    uint32_t minimum;
    if (lead >= 0xC2 && lead <= 0xDF) {
      length = 2, code_point = lead & 0x1Fu, minimum = 0x80;
    } else if (lead >= 0xE0 && lead <= 0xEF) {
      length = 3, code_point = lead & 0x0Fu, minimum = 0x800;
    } else if (lead >= 0xF0 && lead <= 0xF4) {
      length = 4, code_point = lead & 0x07u, minimum = 0x10000;
    } else {
      return Fail("invalid UTF-8 in a string");
    }
    if (start + length > text_.size()) return Fail("truncated UTF-8 sequence in a string");
    for (size_t i = 1; i < length; ++i) {
      auto byte = static_cast<unsigned char>(text_[start + i]);
      if ((byte & 0xC0) != 0x80) return Fail("invalid UTF-8 in a string");
      code_point = (code_point << 6) | (byte & 0x3Fu);
    }
    if (code_point < minimum || code_point > 0x10FFFF ||
        (code_point >= 0xD800 && code_point <= 0xDFFF)) {
      return Fail("invalid UTF-8 in a string");
    }
    out.append(text_.substr(start, length));
    pos_ += length;
    return true;
  }

  bool ParseString(std::string& out) {
    size_t open = pos_;
    ++pos_;  // '"'
    while (true) {
      if (AtEnd()) return FailAt(open, "unterminated string");
      auto c = static_cast<unsigned char>(Peek());
      if (c == '"') {
        ++pos_;
        return true;
      }
      if (c == '\\') {
        if (!ParseEscape(out)) return false;
      } else if (c < 0x20) {
        return Fail("control character " + Describe(Peek()) + " in a string");
      } else if (c < 0x80) {
        out += static_cast<char>(c);
        ++pos_;
      } else if (!CopyUtf8(out)) {
        return false;
      }
    }
  }

  bool ParseNumber(JsonValue& out) {
    size_t start = pos_;
    auto digit = [this] { return !AtEnd() && Peek() >= '0' && Peek() <= '9'; };
    if (Peek() == '-') ++pos_;
    if (!digit()) return Fail("expected a digit");
    if (Peek() == '0') {
      ++pos_;
      if (digit()) return Fail("leading zero in a number");
    } else {
      while (digit()) ++pos_;
    }
    bool integral = true;
    if (!AtEnd() && Peek() == '.') {
      integral = false;
      ++pos_;
      if (!digit()) return Fail("expected a digit after '.'");
      while (digit()) ++pos_;
    }
    if (!AtEnd() && (Peek() == 'e' || Peek() == 'E')) {
      integral = false;
      ++pos_;
      if (!AtEnd() && (Peek() == '+' || Peek() == '-')) ++pos_;
      if (!digit()) return Fail("expected a digit in the exponent");
      while (digit()) ++pos_;
    }
    std::string_view number = text_.substr(start, pos_ - start);
    double value = 0;
    auto [end, error] = std::from_chars(number.data(), number.data() + number.size(), value);
    if (error == std::errc::result_out_of_range || !std::isfinite(value)) {
      return FailAt(start, "number out of range");
    }
    if (error != std::errc() || end != number.data() + number.size()) {
      return FailAt(start, "invalid number");
    }
    std::optional<int64_t> integer;
    if (integral) {
      int64_t exact = 0;
      auto parsed = std::from_chars(number.data(), number.data() + number.size(), exact);
      if (parsed.ec == std::errc() && parsed.ptr == number.data() + number.size()) {
        integer = exact;
      }
    }
    out = JsonValue::Number(value, integer);
    return true;
  }

  std::string_view text_;
  const JsonLimits& limits_;
  size_t pos_ = 0;
  std::string error_;
};

}  // namespace

Expected<JsonValue> ParseJson(std::string_view text, JsonLimits limits) {
  if (text.size() > limits.max_bytes) {
    return Status::Error("offset " + std::to_string(limits.max_bytes) + ": input larger than " +
                         std::to_string(limits.max_bytes) + " bytes");
  }
  try {
    return Parser(text, limits).ParseDocument();
  } catch (const std::exception& e) {  // allocation failure: report, never throw
    return Status::Error(std::string("offset 0: cannot parse: ") + e.what());
  }
}

std::string QuoteJson(std::string_view text) {
  static const char kHex[] = "0123456789abcdef";
  std::string out = "\"";
  for (char c : text) {
    auto byte = static_cast<unsigned char>(c);
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (byte < 0x20 || byte == 0x7f) {
          out += "\\u00";
          out += kHex[byte >> 4];
          out += kHex[byte & 0xF];
        } else {
          out += c;
        }
    }
  }
  out += '"';
  return out;
}

}  // namespace virtcaps
