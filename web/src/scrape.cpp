#include "virtcaps/scrape.h"

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <iterator>
#include <limits>

#include "virtcaps/files.h"
#include "virtcaps/strings.h"

namespace virtcaps {

namespace {

constexpr std::string_view kRequestsName = "virtcaps_http_requests_total";
constexpr std::string_view kRequestsHelp =
    "HTTP requests the agent answered, per path (other: any unknown path) and status code.";

// q of a media range's or a coding's parameters (what follows "type/subtype;":
// "version=1.0.0;q=0.5"): the first q given, else 1; a malformed q is 0.
double QValue(std::string_view parameters) {
  std::optional<double> q;
  ForEachField(parameters, ';', [&](std::string_view parameter) {
    parameter = Trim(parameter);
    if (!q && parameter.rfind("q=", 0) == 0) q = ParseDouble(parameter.substr(2)).value_or(0);
  });
  return q.value_or(1);
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

// Fields of /proc/self/stat after the command name, so field(0) is field 3 (state).
// Read into a buffer on the stack: it is read on every scrape, and a scrape should not
// allocate (each allocation in a worker is a chance for the heap to fragment).
class SelfStat {
 public:
  SelfStat() {
    int fd = ::open("/proc/self/stat", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
    ssize_t n = ::read(fd, text_, sizeof(text_) - 1);
    ::close(fd);
    if (n <= 0) return;
    std::string_view text(text_, static_cast<size_t>(n));
    size_t close = text.rfind(')');  // the command name may contain spaces and parentheses
    if (close == std::string_view::npos) return;
    rest_ = text.substr(close + 1);
  }
  // Field N (1-based, as proc(5) numbers them).
  std::optional<double> Field(size_t number) const {
    if (number < 3) return std::nullopt;
    size_t index = 0;
    std::string_view rest = rest_;
    while (!rest.empty()) {
      size_t start = rest.find_first_not_of(" \n");
      if (start == std::string_view::npos) break;
      rest.remove_prefix(start);
      size_t end = std::min(rest.find_first_of(" \n"), rest.size());
      if (index == number - 3) {
        auto value = ParseUint(rest.substr(0, end));
        if (!value) return std::nullopt;
        return static_cast<double>(*value);
      }
      rest.remove_prefix(end);
      ++index;
    }
    return std::nullopt;
  }

 private:
  char text_[1024];  // ~300 bytes on Linux 6 (52 fields)
  std::string_view rest_;
};

// Descriptors open in this process, less the one that lists them: getdents64 into a
// small buffer on the stack (opendir would allocate 32 kB on every scrape).
std::optional<double> OpenDescriptors() {
  int fd = ::open("/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  alignas(8) char buffer[2048];
  double open = 0;
  while (true) {
    long n = ::syscall(SYS_getdents64, fd, buffer, sizeof(buffer));
    if (n <= 0) break;
    for (long at = 0; at < n;) {
      // struct linux_dirent64: ino (8), off (8), reclen (2), type (1), name.
      unsigned short length;
      std::memcpy(&length, buffer + at + 16, sizeof(length));
      if (buffer[at + 19] != '.') ++open;
      at += length;
    }
  }
  ::close(fd);
  return std::max(0.0, open - 1);
}

}  // namespace

ExpositionFormat NegotiateExpositionFormat(std::string_view accept) {
  double openmetrics = 0;
  double text = 0;
  // Parsed in place: every scrape has this header, and parsing it allocates nothing.
  ForEachField(accept, ',', [&](std::string_view range) {
    size_t semicolon = range.find(';');
    std::string_view type = Trim(range.substr(0, semicolon));
    double q = semicolon == std::string_view::npos ? 1 : QValue(range.substr(semicolon + 1));
    if (EqualsIgnoreCase(type, "application/openmetrics-text")) {
      openmetrics = std::max(openmetrics, q);
    } else if (EqualsIgnoreCase(type, "text/plain") || EqualsIgnoreCase(type, "text/*") ||
               type == "*/*") {
      text = std::max(text, q);
    }
  });
  return openmetrics > 0 && openmetrics > text ? ExpositionFormat::kOpenMetrics
                                               : ExpositionFormat::kPrometheusText;
}

Expected<std::optional<std::set<std::string>>> SelectCollectors(
    std::string_view query, const std::vector<std::string>& available) {
  if (query.empty()) return std::optional<std::set<std::string>>();  // every scrape's case
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
  if (query.empty()) return driver;
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
      std::string(kRequestsName), std::string(kRequestsHelp), prometheus::MetricType::Counter, {}};
  ForEach([&](std::string_view code, std::string_view path, uint64_t count) {
    prometheus::ClientMetric metric;
    metric.label = {{"code", std::string(code)}, {"path", std::string(path)}};
    metric.counter.value = static_cast<double>(count);
    family.metric.push_back(std::move(metric));
  });
  return family;
}

// The agent's own process, so /proc/self of the agent's procfs, never --path.procfs
// (which is the host's, and in a container does not show this process as "self").
ProcessStats::ProcessStats() {
  auto start_ticks = SelfStat().Field(22);
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

ProcessSample ProcessStats::Sample() const {
  ProcessSample sample;
  SelfStat stat;
  double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
  auto user = stat.Field(14), system = stat.Field(15);
  if (user && system) sample.cpu_seconds = (*user + *system) / ticks;
  if (auto rss = stat.Field(24)) sample.resident_bytes = *rss * static_cast<double>(getpagesize());
  sample.virtual_bytes = stat.Field(23);
  sample.start_time_seconds = start_time_seconds_;
  sample.open_fds = OpenDescriptors();
  struct rlimit limit;
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0) {
    sample.max_fds = limit.rlim_cur == RLIM_INFINITY ? std::numeric_limits<double>::infinity()
                                                     : static_cast<double>(limit.rlim_cur);
  }
  sample.threads = stat.Field(20);
  return sample;
}

ProcessSample ProcessStats::Recent(std::chrono::milliseconds max_age) const {
  std::lock_guard<std::mutex> lock(recent_mutex_);
  auto now = std::chrono::steady_clock::now();
  if (!have_recent_ || now - recent_at_ >= max_age) {
    recent_ = Sample();
    recent_at_ = now;
    have_recent_ = true;
    ++samples_taken_;
  }
  return recent_;
}

namespace {

// The process families in their order: name, help, counter or gauge, value.
struct ProcessFamily {
  std::string_view name, help;
  bool counter;
  std::optional<double> ProcessSample::*value;
};
constexpr ProcessFamily kProcessFamilies[] = {
    {"process_cpu_seconds_total", "User and system CPU time the agent has used, in seconds.", true,
     &ProcessSample::cpu_seconds},
    {"process_resident_memory_bytes", "Resident memory of the agent.", false,
     &ProcessSample::resident_bytes},
    {"process_virtual_memory_bytes", "Virtual memory of the agent.", false,
     &ProcessSample::virtual_bytes},
    {"process_start_time_seconds", "Unix time the agent started, in seconds.", false,
     &ProcessSample::start_time_seconds},
    {"process_open_fds", "File descriptors the agent has open.", false, &ProcessSample::open_fds},
    {"process_max_fds", "Most file descriptors the agent may open (RLIMIT_NOFILE).", false,
     &ProcessSample::max_fds},
    {"process_threads", "Threads of the agent.", false, &ProcessSample::threads},
};
bool HasSuffix(std::string_view text, std::string_view suffix) {
  return text.size() >= suffix.size() && text.substr(text.size() - suffix.size()) == suffix;
}

// Help and label values: backslash, double quote (label values) and newline escaped,
// as both serializers do. Runs without an escape are appended whole.
void AppendEscaped(FixedText& out, std::string_view text, bool quote) {
  // (A loop, not find_first_of: libstdc++'s calls memchr once per character.)
  auto is_special = [quote](char c) { return c == '\\' || c == '\n' || (quote && c == '"'); };
  while (!text.empty()) {
    size_t special = 0;
    while (special < text.size() && !is_special(text[special])) ++special;
    out.Append(text.substr(0, special));
    if (special == text.size()) return;
    char c = text[special];
    out.Append(c == '\\' ? "\\\\" : c == '\n' ? "\\n" : "\\\"");
    text.remove_prefix(special + 1);
  }
}

// prometheus-cpp writes a value with 16 significant digits (%.16g), NaN as "Nan";
// OpenMetrics the shortest text that reads back the same (render_openmetrics.cpp).
void AppendValue(FixedText& out, ExpositionFormat format, double value) {
  bool openmetrics = format == ExpositionFormat::kOpenMetrics;
  if (std::isnan(value)) {
    out.Append(openmetrics ? "NaN" : "Nan");
    return;
  }
  if (std::isinf(value)) {
    out.Append(value > 0 ? "+Inf" : "-Inf");
    return;
  }
  char buffer[40];
  // Most live values are whole numbers (bytes, counts): written as an integer, which is
  // what both formats make of them when it has no trailing zero (OpenMetrics' shortest
  // form would write 1000000 as 1e+06; %.16g writes integers below 1e16 in full).
  // to_chars with a precision costs more than the rest of the live families.
  if (value == std::trunc(value) && std::fabs(value) < 1e15 && !std::signbit(value)) {
    auto whole = static_cast<int64_t>(value);
    if (!openmetrics || whole % 10 != 0) {
      auto result = std::to_chars(buffer, buffer + sizeof(buffer), whole);
      out.Append(std::string_view(buffer, static_cast<size_t>(result.ptr - buffer)));
      return;
    }
  }
  if (openmetrics) {
    auto result = std::to_chars(buffer, buffer + sizeof(buffer), value);
    out.Append(std::string_view(buffer, static_cast<size_t>(result.ptr - buffer)));
  } else {
    // printf's %.16g (prometheus-cpp's precision), without printf's cost on every scrape.
    auto result =
        std::to_chars(buffer, buffer + sizeof(buffer), value, std::chars_format::general, 16);
    out.Append(std::string_view(buffer, static_cast<size_t>(result.ptr - buffer)));
  }
}

// The family's head lines. Prometheus text: HELP then TYPE. OpenMetrics: TYPE, UNIT
// (for a _seconds or _bytes family), HELP, with a counter's family named without _total.
// Every live counter's samples are named ..._total already (the family's name as given).
void AppendFamilyHead(FixedText& out, ExpositionFormat format, std::string_view name,
                      std::string_view help, bool counter) {
  if (format != ExpositionFormat::kOpenMetrics) {
    out.Append("# HELP ");
    out.Append(name);
    out.Append(' ');
    AppendEscaped(out, help, false);
    out.Append("\n# TYPE ");
    out.Append(name);
    out.Append(counter ? " counter\n" : " gauge\n");
    return;
  }
  std::string_view family = name;
  if (counter && HasSuffix(family, "_total")) family.remove_suffix(6);
  out.Append("# TYPE ");
  out.Append(family);
  out.Append(counter ? " counter\n" : " gauge\n");
  for (std::string_view unit : {"seconds", "bytes"}) {
    if (family.size() > unit.size() && HasSuffix(family, unit) &&
        family[family.size() - unit.size() - 1] == '_') {
      out.Append("# UNIT ");
      out.Append(family);
      out.Append(' ');
      out.Append(unit);
      out.Append('\n');
    }
  }
  out.Append("# HELP ");
  out.Append(family);
  out.Append(' ');
  AppendEscaped(out, help, false);
  out.Append('\n');
}

// The head lines of the live families (the process's in their order, then the
// requests'), in both formats: constant, so written once, not escaped on every scrape.
constexpr size_t kLiveFamilies = std::size(kProcessFamilies) + 1;
using LiveHeads = std::array<std::array<std::string, kLiveFamilies>, 2>;

const LiveHeads& Heads() {
  static const LiveHeads heads = [] {
    LiveHeads made;
    for (ExpositionFormat format :
         {ExpositionFormat::kPrometheusText, ExpositionFormat::kOpenMetrics}) {
      for (size_t i = 0; i < kLiveFamilies; ++i) {
        bool requests = i == std::size(kProcessFamilies);
        char buffer[512];
        FixedText head(buffer, sizeof(buffer));
        AppendFamilyHead(head, format, requests ? kRequestsName : kProcessFamilies[i].name,
                         requests ? kRequestsHelp : kProcessFamilies[i].help,
                         requests || kProcessFamilies[i].counter);
        made[static_cast<size_t>(format)][i] = std::string(head.view());
      }
    }
    return made;
  }();
  return heads;
}

}  // namespace

void FixedText::Append(std::string_view text) {
  size_t room = capacity_ - size_;
  if (text.size() > room) {
    overflowed_ = true;
    text = text.substr(0, room);
  }
  std::memcpy(data_ + size_, text.data(), text.size());
  size_ += text.size();
}

void AppendLiveFamilies(FixedText& out, ExpositionFormat format, const ProcessSample& sample,
                        const RequestCounters& requests) {
  const auto& heads = Heads()[static_cast<size_t>(format)];
  for (size_t i = 0; i < std::size(kProcessFamilies); ++i) {
    const std::optional<double>& value = sample.*kProcessFamilies[i].value;
    if (!value) continue;
    out.Append(heads[i]);
    out.Append(kProcessFamilies[i].name);  // the samples' name, _total included
    out.Append(' ');
    AppendValue(out, format, *value);
    out.Append('\n');
  }
  out.Append(heads.back());
  requests.ForEach([&](std::string_view code, std::string_view path, uint64_t count) {
    out.Append(kRequestsName);
    out.Append("{code=\"");
    AppendEscaped(out, code, true);
    out.Append("\",path=\"");
    AppendEscaped(out, path, true);
    out.Append("\"} ");
    AppendValue(out, format, static_cast<double>(count));
    out.Append('\n');
  });
}

std::vector<prometheus::MetricFamily> ProcessStats::Families(const ProcessSample& sample) {
  std::vector<prometheus::MetricFamily> families;
  for (const ProcessFamily& family : kProcessFamilies) {
    const std::optional<double>& value = sample.*family.value;
    if (!value) continue;
    families.push_back(OneValue(
        std::string(family.name), std::string(family.help),
        family.counter ? prometheus::MetricType::Counter : prometheus::MetricType::Gauge, *value));
  }
  return families;
}

}  // namespace virtcaps
