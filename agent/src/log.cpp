#include "virtcaps/log.h"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <mutex>

namespace virtcaps {

namespace {

std::atomic<int> g_level{static_cast<int>(LogConfig::Level::kInfo)};
std::mutex g_write_mutex;

void AppendQuoted(std::string& out, const std::string& value) {
  bool needs_quotes = value.empty();
  for (char c : value) needs_quotes = needs_quotes || c == ' ' || c == '"' || c == '=' || c == '\n';
  if (!needs_quotes) {
    out += value;
    return;
  }
  out += '"';
  for (char c : value) {
    if (c == '"' || c == '\\') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  out += '"';
}

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
  std::string line = std::string("ts=") + stamp + " level=" + name + " msg=";
  AppendQuoted(line, message);
  for (const auto& [key, value] : fields) {
    line += ' ';
    line += key;
    line += '=';
    AppendQuoted(line, value);
  }
  line += '\n';
  std::lock_guard<std::mutex> lock(g_write_mutex);
  std::fputs(line.c_str(), stderr);
  std::fflush(stderr);
}

}  // namespace

void SetLogLevel(LogConfig::Level level) { g_level.store(static_cast<int>(level)); }
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
