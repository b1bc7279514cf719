#include <expat.h>

#include <string>
#include <vector>

#include "virtcaps/strings.h"
#include "virtcaps/xml.h"

namespace virtcaps {

namespace {

struct ReaderState {
  XML_Parser parser = nullptr;
  XmlReadLimits limits;
  XmlElement root;
  bool have_root = false;
  std::vector<XmlElement*> open;  // path from the root to the element being read
  std::string error;

  void Fail(const std::string& message) {
    if (error.empty()) error = message;
    XML_StopParser(parser, XML_FALSE);
  }
};

void OnStart(void* data, const XML_Char* name, const XML_Char** attributes) {
  auto* state = static_cast<ReaderState*>(data);
  if (state->open.size() >= state->limits.max_depth) {
    state->Fail("nesting deeper than " + std::to_string(state->limits.max_depth));
    return;
  }
  XmlElement* element = nullptr;
  if (state->open.empty()) {
    state->root = XmlElement(name);
    state->have_root = true;
    element = &state->root;
  } else {
    element = &state->open.back()->Add(name);
  }
  for (size_t i = 0; attributes[i] != nullptr; i += 2) {
    element->attributes.emplace_back(attributes[i], attributes[i + 1]);
  }
  state->open.push_back(element);
}

void OnEnd(void* data, const XML_Char* /*name*/) {
  auto* state = static_cast<ReaderState*>(data);
  // Stopped in OnStart (too deep): expat still ends an empty element it never opened here.
  if (!state->error.empty()) return;
  XmlElement* element = state->open.back();
  // Only leaf elements carry text (xml.h): character data between children is dropped,
  // as WriteXml would drop it.
  element->text = element->children.empty() ? std::string(Trim(element->text)) : std::string();
  state->open.pop_back();
}

void OnText(void* data, const XML_Char* text, int length) {
  auto* state = static_cast<ReaderState*>(data);
  if (!state->open.empty()) state->open.back()->text.append(text, static_cast<size_t>(length));
}

void OnDoctype(void* data, const XML_Char* /*name*/, const XML_Char* /*sysid*/,
               const XML_Char* /*pubid*/, int /*has_internal_subset*/) {
  static_cast<ReaderState*>(data)->Fail("DOCTYPE declarations are not accepted");
}

}  // namespace

Expected<XmlElement> ParseXml(std::string_view document, XmlReadLimits limits) {
  if (document.size() > limits.max_bytes) {
    return Status::Error("XML document larger than " + std::to_string(limits.max_bytes) + " bytes");
  }
  ReaderState state;
  state.limits = limits;
  state.parser = XML_ParserCreate("UTF-8");
  if (state.parser == nullptr) return Status::Error("XML parser: out of memory");
  XML_SetUserData(state.parser, &state);
  XML_SetElementHandler(state.parser, OnStart, OnEnd);
  XML_SetCharacterDataHandler(state.parser, OnText);
  XML_SetStartDoctypeDeclHandler(state.parser, OnDoctype);
  XML_Status result =
      XML_Parse(state.parser, document.data(), static_cast<int>(document.size()), XML_TRUE);
  std::string error;
  if (!state.error.empty()) {
    error = state.error;
  } else if (result != XML_STATUS_OK) {
    error = std::string(XML_ErrorString(XML_GetErrorCode(state.parser))) + " at line " +
            std::to_string(XML_GetCurrentLineNumber(state.parser)) + ", column " +
            std::to_string(XML_GetCurrentColumnNumber(state.parser) + 1);
  }
  XML_ParserFree(state.parser);
  if (!error.empty()) return Status::Error("XML: " + error);
  if (!state.have_root) return Status::Error("XML: no root element");
  return std::move(state.root);
}

}  // namespace virtcaps
