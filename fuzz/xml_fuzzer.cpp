// ParseXml (expat) on arbitrary bytes, with the default and with tight depth limits. An
// accepted document, written back with WriteXml, parses to the same element tree, and
// writing that gives the same text.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "virtcaps/xml.h"

#include "fuzz_check.h"

namespace {

bool Same(const virtcaps::XmlElement& a, const virtcaps::XmlElement& b) {
  if (a.name != b.name || a.attributes != b.attributes || a.text != b.text ||
      a.children.size() != b.children.size()) {
    return false;
  }
  for (auto i = a.children.begin(), j = b.children.begin(); i != a.children.end(); ++i, ++j) {
    if (!Same(*i, *j)) return false;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view document(reinterpret_cast<const char*>(data), size);
  auto parsed = virtcaps::ParseXml(document);
  // The depth limit's paths too (expat stopped mid-document): a limit of 0..3 that only
  // ever refuses, never changes, what the default limits accept.
  virtcaps::XmlReadLimits tight;
  tight.max_depth = size % 4;
  auto limited = virtcaps::ParseXml(document, tight);
  if (limited) FUZZ_CHECK(parsed.ok() && Same(*limited, *parsed));
  if (!parsed) {
    FUZZ_CHECK(parsed.error().rfind("XML", 0) == 0);
    return 0;
  }
  FUZZ_CHECK(!parsed->name.empty());
  std::string written = virtcaps::WriteXml(*parsed);
  auto again = virtcaps::ParseXml(written);
  if (!again) std::fprintf(stderr, "rewritten document fails: %s\n", again.error().c_str());
  FUZZ_CHECK(again.ok());
  if (!Same(*parsed, *again)) std::fprintf(stderr, "rewritten document:\n%s", written.c_str());
  FUZZ_CHECK(Same(*parsed, *again));
  FUZZ_CHECK(virtcaps::WriteXml(*again) == written);
  return 0;
}
