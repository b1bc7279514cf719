// The parts of a /metrics answer decided per scrape: which collectors (?collect[]= /
// exclude[]=), which format (Accept), and the live families that cannot come from the
// snapshot (the agent's own process, and the requests it has answered).
#pragma once

#include <prometheus/metric_family.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "virtcaps/exposition.h"
#include "virtcaps/status.h"

namespace virtcaps {

// OpenMetrics when the Accept header prefers application/openmetrics-text (by q-value)
// over the text format, else the text format 0.0.4 (also for an absent header).
ExpositionFormat NegotiateExpositionFormat(std::string_view accept);

// node_exporter's per-scrape filter: "collect[]=cpu&collect[]=kvm" keeps those,
// "exclude[]=numa" drops those (collect[] first, then exclude[]). nullopt: no filter.
// A name that is not in `available` (the collectors that ran) is an error that lists them.
Expected<std::optional<std::set<std::string>>> SelectCollectors(
    std::string_view query, const std::vector<std::string>& available);

// /capabilities?driver=qemu|lxc|xen: that libvirt driver's document. Empty without the
// parameter (every driver); an error for any other value.
Expected<std::string> SelectDriver(std::string_view query);

// Requests answered, per path and status code, counted with relaxed atomics (no lock on
// the request path). Paths outside the served set count as "other", as do codes.
class RequestCounters {
 public:
  explicit RequestCounters(std::string telemetry_path);
  void Count(std::string_view path, int status);
  // virtcaps_http_requests_total{path,code}: every pair counted so far, plus code 200 of
  // every served path (so rate() has a series from the start).
  prometheus::MetricFamily Family() const;
  // The same series, in the same order, as (code, path, count), without building them.
  template <typename Visit>
  void ForEach(Visit visit) const {
    for (size_t path = 0; path < kPathCount; ++path) {
      for (size_t code = 0; code <= kCodes.size(); ++code) {
        uint64_t count = counts_[path][code].load(std::memory_order_relaxed);
        bool served_ok = code == 0 && path + 1 < kPathCount;
        if (count == 0 && !served_ok) continue;
        visit(code < kCodes.size() ? kCodeNames[code] : std::string_view("other"), paths_[path],
              count);
      }
    }
  }

  static constexpr std::array<int, 9> kCodes = {200, 304, 400, 401, 404, 405, 406, 500, 503};
  static constexpr std::array<std::string_view, 9> kCodeNames = {"200", "304", "400", "401", "404",
                                                                 "405", "406", "500", "503"};
  // telemetry path, /, /capabilities, /domcapabilities, /healthz, other
  static constexpr size_t kPathCount = 6;

 private:
  size_t PathIndex(std::string_view path) const;

  std::array<std::string, kPathCount> paths_;
  // [path][code]; the last code column is "other".
  std::array<std::array<std::atomic<uint64_t>, kCodes.size() + 1>, kPathCount> counts_{};
};

// What the process_* families say; a value that could not be read is absent.
struct ProcessSample {
  std::optional<double> cpu_seconds, resident_bytes, virtual_bytes, start_time_seconds, open_fds,
      max_fds, threads;
};

// The process_* families every exporter dashboard uses, read from /proc/self (a few
// small reads into buffers on the stack, no allocation).
class ProcessStats {
 public:
  // Reads the start time once (/proc/self/stat starttime and /proc/stat btime).
  ProcessStats();
  ProcessSample Sample() const;
  // The last sample when it is younger than max_age, else a new one. Reading
  // /proc/self/stat (which sums every thread) and listing /proc/self/fd is about a
  // third of a scrape's CPU: under a flood of scrapes one sample serves many.
  ProcessSample Recent(std::chrono::milliseconds max_age) const;
  uint64_t samples_taken() const { return samples_taken_.load(); }  // by Recent, for tests
  std::vector<prometheus::MetricFamily> Families() const { return Families(Sample()); }
  static std::vector<prometheus::MetricFamily> Families(const ProcessSample& sample);

 private:
  std::optional<double> start_time_seconds_;
  mutable std::mutex recent_mutex_;
  mutable ProcessSample recent_;
  mutable std::chrono::steady_clock::time_point recent_at_;
  mutable bool have_recent_ = false;
  mutable std::atomic<uint64_t> samples_taken_{0};
};

// Text in a fixed buffer the caller owns (on its stack): what does not fit is dropped,
// and overflowed() says so.
class FixedText {
 public:
  FixedText(char* data, size_t capacity) : data_(data), capacity_(capacity) {}
  void Append(std::string_view text);
  void Append(char c) { Append(std::string_view(&c, 1)); }
  std::string_view view() const { return std::string_view(data_, size_); }
  bool overflowed() const { return overflowed_; }

 private:
  char* data_;
  size_t capacity_;
  size_t size_ = 0;
  bool overflowed_ = false;
};

// The live families of one scrape, the process's then the requests', written straight
// into `out` in `format`: the same bytes as Serialize(ProcessStats::Families(sample) and
// requests.Family(), format), without building them (a scrape allocates nothing here).
void AppendLiveFamilies(FixedText& out, ExpositionFormat format, const ProcessSample& sample,
                        const RequestCounters& requests);

}  // namespace virtcaps
