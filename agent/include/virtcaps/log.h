// logfmt lines on stderr: ts=... level=info msg="..." key=value.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "virtcaps/config.h"

namespace virtcaps {

using LogFields = std::vector<std::pair<std::string, std::string>>;

void SetLogLevel(LogConfig::Level level);
void LogDebug(const std::string& message, const LogFields& fields = {});
void LogInfo(const std::string& message, const LogFields& fields = {});
void LogWarn(const std::string& message, const LogFields& fields = {});
void LogError(const std::string& message, const LogFields& fields = {});

}  // namespace virtcaps
