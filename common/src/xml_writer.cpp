#include <string>

#include "virtcaps/xml.h"

namespace virtcaps {

XmlElement& XmlElement::Add(std::string child_name, std::string child_text) {
  XmlElement& child = children.emplace_back(std::move(child_name));
  child.text = std::move(child_text);
  return child;
}

XmlElement& XmlElement::SetAttribute(std::string key, std::string value) {
  for (auto& [existing_key, existing_value] : attributes) {
    if (existing_key == key) {
      existing_value = std::move(value);
      return *this;
    }
  }
  attributes.emplace_back(std::move(key), std::move(value));
  return *this;
}

const std::string* XmlElement::Attribute(std::string_view key) const {
  for (const auto& [existing_key, value] : attributes) {
    if (existing_key == key) return &value;
  }
  return nullptr;
}

const XmlElement* XmlElement::Child(std::string_view child_name) const {
  for (const XmlElement& child : children) {
    if (child.name == child_name) return &child;
  }
  return nullptr;
}

std::vector<const XmlElement*> XmlElement::ChildrenNamed(std::string_view child_name) const {
  std::vector<const XmlElement*> found;
  for (const XmlElement& child : children) {
    if (child.name == child_name) found.push_back(&child);
  }
  return found;
}

namespace {

void AppendEscaped(std::string& out, std::string_view text, bool in_attribute) {
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '\'':
        out += in_attribute ? "&apos;" : "'";
        break;
      case '"':
        out += in_attribute ? "&quot;" : "\"";
        break;
      // A reader turns a literal CR into LF, and literal tabs and newlines in attribute
      // values into spaces; character references keep them.
      case '\r':
        out += "&#13;";
        break;
      case '\n':
        out += in_attribute ? "&#10;" : "\n";
        break;
      case '\t':
        out += in_attribute ? "&#9;" : "\t";
        break;
      default:
        // XML 1.0 forbids most control characters even when escaped; drop them.
        if (static_cast<unsigned char>(c) < 0x20 && c != '\t' && c != '\n' && c != '\r') break;
        out += c;
    }
  }
}

void WriteElement(std::string& out, const XmlElement& element, int depth) {
  out.append(static_cast<size_t>(depth) * 2, ' ');
  out += '<';
  out += element.name;
  for (const auto& [key, value] : element.attributes) {
    out += ' ';
    out += key;
    out += "='";
    AppendEscaped(out, value, true);
    out += '\'';
  }
  if (element.children.empty() && element.text.empty()) {
    out += "/>\n";
    return;
  }
  out += '>';
  if (element.children.empty()) {
    AppendEscaped(out, element.text, false);
  } else {
    out += '\n';
    for (const XmlElement& child : element.children) WriteElement(out, child, depth + 1);
    out.append(static_cast<size_t>(depth) * 2, ' ');
  }
  out += "</";
  out += element.name;
  out += ">\n";
}

}  // namespace

std::string EscapeXml(std::string_view text) {
  std::string out;
  AppendEscaped(out, text, true);
  return out;
}

std::string WriteXml(const XmlElement& root) {
  std::string out;
  WriteElement(out, root, 0);
  return out;
}

}  // namespace virtcaps
