// Small readers for kernel parameter files shared by several collectors.
#pragma once

#include <string>

#include "virtcaps/files.h"
#include "virtcaps/status.h"

namespace virtcaps {

// Module parameters print Y/N on some kernels and 1/0 on others.
inline Expected<bool> ReadBoolParameter(const std::string& path) {
  auto text = ReadValue(path);
  if (!text) return text.status();
  if (*text == "Y" || *text == "y" || *text == "1") return true;
  if (*text == "N" || *text == "n" || *text == "0") return false;
  return Status::Error(path + ": expected Y, N, 1 or 0, got '" + text->substr(0, 20) + "'");
}

}  // namespace virtcaps
