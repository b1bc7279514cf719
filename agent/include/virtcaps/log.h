// One record per line on stderr, as logfmt (ts=... level=info msg="..." key=value) or
// JSON ({"ts":"...","level":"info","msg":"...","key":"value"}).
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "virtcaps/config.h"

namespace virtcaps {

using LogFields = std::vector<std::pair<std::string, std::string>>;

void SetLogLevel(LogConfig::Level level);
void SetLogFormat(LogConfig::Format format);
// One record as it is written, without the trailing newline (for tests).
std::string FormatLogRecord(LogConfig::Format format, std::string_view timestamp,
                            std::string_view level, std::string_view message,
                            const LogFields& fields);
// Whether debug records are written, so a hot path can skip building their fields.
bool LogDebugEnabled();
void LogDebug(const std::string& message, const LogFields& fields = {});
void LogInfo(const std::string& message, const LogFields& fields = {});
void LogWarn(const std::string& message, const LogFields& fields = {});
void LogError(const std::string& message, const LogFields& fields = {});

}  // namespace virtcaps
