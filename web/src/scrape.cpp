#include "virtcaps/scrape.h"

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <limits>

#include "virtcaps/files.h"
#include "virtcaps/strings.h"

namespace virtcaps {

namespace {

// q of one media range ("type/subtype;version=1.0.0;q=0.5"); 1 when not given.
double QValue(const std::vector<std::string_view>& fields) {
  for (size_t i = 1; i < fields.size(); ++i) {
    std::string_view parameter = Trim(fields[i]);
    if (parameter.rfind("q=", 0) == 0) return ParseDouble(parameter.substr(2)).value_or(0);
  }
  return 1;
}

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// application/x-www-form-urlencoded: %XX and '+' for space. A bad escape stays as is.
std::string UrlDecode(std::string_view text) {
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '+') {
      out += ' ';
    } else if (text[i] == '%' && i + 2 < text.size() && HexDigit(text[i + 1]) >= 0 &&
               HexDigit(text[i + 2]) >= 0) {
      out += static_cast<char>(HexDigit(text[i + 1]) * 16 + HexDigit(text[i + 2]));
      i += 2;
    } else {
      out += text[i];
    }
  }
  return out;
}

prometheus::MetricFamily OneValue(const std::string& name, const std::string& help,
                                  prometheus::MetricType type, double value) {
  prometheus::MetricFamily family{name, help, type, {}};
  prometheus::ClientMetric metric;
  if (type == prometheus::MetricType::Counter) {
    metric.counter.value = value;
  } else {
    metric.gauge.value = value;
  }
  family.metric.push_back(std::move(metric));
  return family;
}

// Fields of /proc/self/stat after the command name, so fields[0] is field 3 (state).
std::vector<std::string> SelfStatFields() {
  auto text = ReadFile("/proc/self/stat", 4096);
  std::vector<std::string> fields;
  if (!text) return fields;
  size_t close = text->rfind(')');  // the command name may contain spaces and parentheses
  if (close == std::string::npos) return fields;
  for (std::string_view field : SplitWhitespace(std::string_view(*text).substr(close + 1))) {
    fields.emplace_back(field);
  }
  return fields;
}

// Field N (1-based, as proc(5) numbers them) of /proc/self/stat.
std::optional<double> StatField(const std::vector<std::string>& fields, size_t number) {
  if (number < 3 || number - 3 >= fields.size()) return std::nullopt;
  auto value = ParseUint(fields[number - 3]);
  if (!value) return std::nullopt;
  return static_cast<double>(*value);
}

}  // namespace

ExpositionFormat NegotiateExpositionFormat(std::string_view accept) {
  double openmetrics = 0;
  double text = 0;
  for (std::string_view range : Split(accept, ',')) {
    auto fields = Split(range, ';');
    std::string type = ToLower(Trim(fields[0]));
    double q = QValue(fields);
    if (type == "application/openmetrics-text") {
      openmetrics = std::max(openmetrics, q);
    } else if (type == "text/plain" || type == "text/*" || type == "*/*") {
      text = std::max(text, q);
    }
  }
  return openmetrics > 0 && openmetrics > text ? ExpositionFormat::kOpenMetrics
                                               : ExpositionFormat::kPrometheusText;
}

Expected<std::optional<std::set<std::string>>> SelectCollectors(
    std::string_view query, const std::vector<std::string>& available) {
  std::vector<std::string> collect, exclude;
  for (std::string_view pair : Split(query, '&')) {
    if (pair.empty()) continue;
    size_t equals = pair.find('=');
    std::string key = UrlDecode(pair.substr(0, equals));
    std::string value = equals == std::string_view::npos ? "" : UrlDecode(pair.substr(equals + 1));
    if (key == "collect[]") collect.push_back(value);
    if (key == "exclude[]") exclude.push_back(value);
  }
  if (collect.empty() && exclude.empty()) return std::optional<std::set<std::string>>();
  std::set<std::string> known(available.begin(), available.end());
  for (const auto* names : {&collect, &exclude}) {
    for (const std::string& name : *names) {
      if (!known.count(name)) {
        return Status::Error("unknown or disabled collector '" + name +
                             "'; collectors: " + JoinStrings(available, ", "));
      }
    }
  }
  std::set<std::string> selected =
      collect.empty() ? known : std::set<std::string>(collect.begin(), collect.end());
  for (const std::string& name : exclude) selected.erase(name);
  return std::optional<std::set<std::string>>(std::move(selected));
}

Expected<std::string> SelectDriver(std::string_view query) {
  std::string driver;
  for (std::string_view pair : Split(query, '&')) {
    size_t equals = pair.find('=');
    if (UrlDecode(pair.substr(0, equals)) != "driver") continue;
    driver = equals == std::string_view::npos ? "" : UrlDecode(pair.substr(equals + 1));
    if (driver != "qemu" && driver != "lxc" && driver != "xen") {
      return Status::Error("unknown driver '" + driver + "'; drivers: qemu, lxc, xen");
    }
  }
  return driver;
}

RequestCounters::RequestCounters(std::string telemetry_path)
    : paths_{std::move(telemetry_path), "/",        "/capabilities",
             "/domcapabilities",        "/healthz", "other"} {}

size_t RequestCounters::PathIndex(std::string_view path) const {
  for (size_t i = 0; i + 1 < kPathCount; ++i) {
    if (paths_[i] == path) return i;
  }
  return kPathCount - 1;
}

void RequestCounters::Count(std::string_view path, int status) {
  auto code = std::find(kCodes.begin(), kCodes.end(), status);
  counts_[PathIndex(path)][static_cast<size_t>(code - kCodes.begin())].fetch_add(
      1, std::memory_order_relaxed);
}

prometheus::MetricFamily RequestCounters::Family() const {
  prometheus::MetricFamily family{
      "virtcaps_http_requests_total",
      "HTTP requests the agent answered, per path (other: any unknown path) and status code.",
      prometheus::MetricType::Counter,
      {}};
  for (size_t path = 0; path < kPathCount; ++path) {
    for (size_t code = 0; code <= kCodes.size(); ++code) {
      uint64_t count = counts_[path][code].load(std::memory_order_relaxed);
      bool served_ok = code == 0 && path + 1 < kPathCount;
      if (count == 0 && !served_ok) continue;
      prometheus::ClientMetric metric;
      metric.label = {{"code", code < kCodes.size() ? std::to_string(kCodes[code]) : "other"},
                      {"path", paths_[path]}};
      metric.counter.value = static_cast<double>(count);
      family.metric.push_back(std::move(metric));
    }
  }
  return family;
}

// The agent's own process, so /proc/self of the agent's procfs, never --path.procfs
// (which is the host's, and in a container does not show this process as "self").
ProcessStats::ProcessStats() {
  auto fields = SelfStatFields();
  auto start_ticks = StatField(fields, 22);
  auto proc_stat = ReadFile("/proc/stat", 1 << 20);
  if (!start_ticks || !proc_stat) return;
  for (std::string_view line : Split(*proc_stat, '\n')) {
    if (line.rfind("btime ", 0) != 0) continue;
    if (auto boot = ParseUint(Trim(line.substr(6)))) {
      start_time_seconds_ =
          static_cast<double>(*boot) + *start_ticks / static_cast<double>(sysconf(_SC_CLK_TCK));
    }
  }
}

std::vector<prometheus::MetricFamily> ProcessStats::Families() const {
  using prometheus::MetricType;
  std::vector<prometheus::MetricFamily> families;
  auto fields = SelfStatFields();
  double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
  auto user = StatField(fields, 14), system = StatField(fields, 15);
  if (user && system) {
    families.push_back(OneValue("process_cpu_seconds_total",
                                "User and system CPU time the agent has used, in seconds.",
                                MetricType::Counter, (*user + *system) / ticks));
  }
  if (auto rss = StatField(fields, 24)) {
    families.push_back(OneValue("process_resident_memory_bytes", "Resident memory of the agent.",
                                MetricType::Gauge, *rss * static_cast<double>(getpagesize())));
  }
  if (auto vsize = StatField(fields, 23)) {
    families.push_back(OneValue("process_virtual_memory_bytes", "Virtual memory of the agent.",
                                MetricType::Gauge, *vsize));
  }
  if (start_time_seconds_) {
    families.push_back(OneValue("process_start_time_seconds",
                                "Unix time the agent started, in seconds.", MetricType::Gauge,
                                *start_time_seconds_));
  }
  if (DIR* dir = opendir("/proc/self/fd")) {
    double open = 0;
    while (struct dirent* entry = readdir(dir)) {
      if (entry->d_name[0] != '.') ++open;
    }
    closedir(dir);
    // The directory being listed holds one descriptor itself; it is not the agent's.
    families.push_back(OneValue("process_open_fds", "File descriptors the agent has open.",
                                MetricType::Gauge, std::max(0.0, open - 1)));
  }
  struct rlimit limit;
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0) {
    double max = limit.rlim_cur == RLIM_INFINITY ? std::numeric_limits<double>::infinity()
                                                 : static_cast<double>(limit.rlim_cur);
    families.push_back(OneValue("process_max_fds",
                                "Most file descriptors the agent may open (RLIMIT_NOFILE).",
                                MetricType::Gauge, max));
  }
  if (auto threads = StatField(fields, 20)) {
    families.push_back(
        OneValue("process_threads", "Threads of the agent.", MetricType::Gauge, *threads));
  }
  return families;
}

}  // namespace virtcaps
