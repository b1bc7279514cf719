// A small XML element tree, written in libvirt's layout and read back with expat.
// The capabilities document, the emulator probe cache and the tests all use it.
#pragma once

#include <list>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "virtcaps/status.h"

namespace virtcaps {

struct XmlElement {
  std::string name;
  std::vector<std::pair<std::string, std::string>> attributes;  // in document order
  std::string text;                // character data, trimmed; only leaf elements carry it
  std::list<XmlElement> children;  // std::list: references stay valid while siblings are added

  explicit XmlElement(std::string element_name = {}) : name(std::move(element_name)) {}

  // Appends a child and returns it, for building documents.
  XmlElement& Add(std::string child_name, std::string child_text = {});
  XmlElement& SetAttribute(std::string key, std::string value);

  // Look-ups for readers; nullptr / empty when absent.
  const std::string* Attribute(std::string_view key) const;
  const XmlElement* Child(std::string_view child_name) const;
  std::vector<const XmlElement*> ChildrenNamed(std::string_view child_name) const;
};

// `text` with &, <, >, ' and " escaped (also safe in HTML text and attributes).
std::string EscapeXml(std::string_view text);

// Serializes with two-space indentation and single-quoted attributes, as libvirt does.
std::string WriteXml(const XmlElement& root);

struct XmlReadLimits {
  size_t max_bytes = 8u << 20;
  size_t max_depth = 64;
};

// Parses a document with expat. DOCTYPE declarations are refused (no entity expansion).
Expected<XmlElement> ParseXml(std::string_view document, XmlReadLimits limits = {});

}  // namespace virtcaps
