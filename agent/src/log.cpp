#include "virtcaps/log.h"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <mutex>

#include "virtcaps/json.h"

namespace virtcaps {

namespace {

std::atomic<int> g_level{static_cast<int>(LogConfig::Level::kInfo)};
std::atomic<int> g_format{static_cast<int>(LogConfig::Format::kLogfmt)};
std::mutex g_write_mutex;

bool IsControl(unsigned char c) { return c < 0x20 || c == 0x7f; }

// logfmt: bare when the value has no space, quote, '=' or control character; otherwise
// quoted, with \\, \", \n, \r, \t and \u00XX for every other control character, so one
// record is always one line and a terminal never sees a raw escape sequence.
void AppendLogfmtValue(std::string& out, std::string_view value) {
  bool needs_quotes = value.empty();
  for (char c : value) {
    needs_quotes = needs_quotes || c == ' ' || c == '"' || c == '=' ||
                   IsControl(static_cast<unsigned char>(c));
  }
  if (!needs_quotes) {
    out += value;
    return;
  }
  out += QuoteJson(value);
}

// A JSON string (RFC 8259): quote, backslash and every control character escaped.
void AppendJsonString(std::string& out, std::string_view value) { out += QuoteJson(value); }

void Write(LogConfig::Level level, const char* name, const std::string& message,
           const LogFields& fields) {
  if (static_cast<int>(level) < g_level.load(std::memory_order_relaxed)) return;
  auto now = std::chrono::system_clock::now();
  std::time_t seconds = std::chrono::system_clock::to_time_t(now);
  auto millis =
      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm utc;
  gmtime_r(&seconds, &utc);
  char stamp[96];
  std::snprintf(stamp, sizeof(stamp), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", utc.tm_year + 1900,
                utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec,
                static_cast<int>(millis));
  auto format = static_cast<LogConfig::Format>(g_format.load(std::memory_order_relaxed));
  std::string line = FormatLogRecord(format, stamp, name, message, fields);
  line += '\n';
  std::lock_guard<std::mutex> lock(g_write_mutex);
  std::fputs(line.c_str(), stderr);
  std::fflush(stderr);
}

}  // namespace

void SetLogLevel(LogConfig::Level level) { g_level.store(static_cast<int>(level)); }
void SetLogFormat(LogConfig::Format format) { g_format.store(static_cast<int>(format)); }

std::string FormatLogRecord(LogConfig::Format format, std::string_view timestamp,
                            std::string_view level, std::string_view message,
                            const LogFields& fields) {
  std::string line;
  if (format == LogConfig::Format::kJson) {
    line = "{\"ts\":";
    AppendJsonString(line, timestamp);
    line += ",\"level\":";
    AppendJsonString(line, level);
    line += ",\"msg\":";
    AppendJsonString(line, message);
    for (const auto& [key, value] : fields) {
      line += ',';
      AppendJsonString(line, key);
      line += ':';
      AppendJsonString(line, value);
    }
    line += '}';
    return line;
  }
  line = "ts=";
  line += timestamp;
  line += " level=";
  line += level;
  line += " msg=";
  AppendLogfmtValue(line, message);
  for (const auto& [key, value] : fields) {
    line += ' ';
    line += key;
    line += '=';
    AppendLogfmtValue(line, value);
  }
  return line;
}
bool LogDebugEnabled() {
  return g_level.load(std::memory_order_relaxed) <= static_cast<int>(LogConfig::Level::kDebug);
}

void LogDebug(const std::string& m, const LogFields& f) {
  Write(LogConfig::Level::kDebug, "debug", m, f);
}
void LogInfo(const std::string& m, const LogFields& f) {
  Write(LogConfig::Level::kInfo, "info", m, f);
}
void LogWarn(const std::string& m, const LogFields& f) {
  Write(LogConfig::Level::kWarn, "warn", m, f);
}
void LogError(const std::string& m, const LogFields& f) {
  Write(LogConfig::Level::kError, "error", m, f);
}

}  // namespace virtcaps
