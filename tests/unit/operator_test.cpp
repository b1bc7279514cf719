// Operator-facing conventions: OpenMetrics, format negotiation, per-scrape collector
// filters, request counters, process metrics, log formats, and the flags for them.
#include <gtest/gtest.h>

#include <chrono>

#include <thread>

#include <atomic>

#include <limits>

#include <clocale>
#include <cmath>
#include <ctime>
#include <map>

#include "test_support.h"
#include "virtcaps/cli.h"
#include "virtcaps/collector.h"
#include "virtcaps/exposition.h"
#include "virtcaps/log.h"
#include "virtcaps/scrape.h"
#include "virtcaps/snapshot.h"

namespace virtcaps {
namespace {

prometheus::MetricFamily Family(std::string name, prometheus::MetricType type, double value,
                                std::vector<prometheus::ClientMetric::Label> labels = {}) {
  prometheus::MetricFamily family{std::move(name), "Help with a \\ and a \" quote.", type, {}};
  prometheus::ClientMetric metric;
  metric.label = std::move(labels);
  metric.counter.value = value;
  metric.gauge.value = value;
  family.metric.push_back(metric);
  return family;
}

TEST(OpenMetricsTest, InfoCountersUnitsAndEscaping) {
  using prometheus::MetricType;
  std::string text = SerializeOpenMetrics({
      Family("virtcaps_build_info", MetricType::Gauge, 1, {{"version", "a\"b\\c\nd"}}),
      Family("virtcaps_refreshes_total", MetricType::Counter, 3),
      Family("process_cpu_seconds_total", MetricType::Counter, 0.25),
      Family("virtcaps_numa_node_memory_bytes", MetricType::Gauge, 1073741824),
      Family("virtcaps_odd_info", MetricType::Gauge, 2),  // not 1: stays a gauge
      Family("virtcaps_unknown", MetricType::Gauge, std::nan("")),
  });
  EXPECT_NE(text.find("# TYPE virtcaps_build info\n"), std::string::npos) << text;
  EXPECT_NE(text.find("virtcaps_build_info{version=\"a\\\"b\\\\c\\nd\"} 1\n"), std::string::npos);
  EXPECT_NE(text.find("# HELP virtcaps_build Help with a \\\\ and a \\\" quote.\n"),
            std::string::npos);
  EXPECT_NE(text.find("# TYPE virtcaps_refreshes counter\n"), std::string::npos);
  EXPECT_NE(text.find("\nvirtcaps_refreshes_total 3\n"), std::string::npos);
  EXPECT_NE(text.find("# TYPE process_cpu_seconds counter\n# UNIT process_cpu_seconds seconds\n"),
            std::string::npos);
  EXPECT_NE(text.find("\nprocess_cpu_seconds_total 0.25\n"), std::string::npos);
  EXPECT_NE(text.find("# UNIT virtcaps_numa_node_memory_bytes bytes\n"), std::string::npos);
  EXPECT_NE(text.find("virtcaps_numa_node_memory_bytes 1073741824\n"), std::string::npos);
  EXPECT_NE(text.find("# TYPE virtcaps_odd_info gauge\n"), std::string::npos);
  EXPECT_NE(text.find("virtcaps_unknown NaN\n"), std::string::npos);
  EXPECT_EQ(text.find("# EOF"), std::string::npos);  // the caller closes the exposition
}

TEST(OpenMetricsTest, NumbersIgnoreACommaDecimalLocale) {
  const char* previous = std::setlocale(LC_ALL, nullptr);
  std::string saved = previous ? previous : "C";
  if (!std::setlocale(LC_ALL, "de_DE.UTF-8")) GTEST_SKIP() << "de_DE.UTF-8 locale missing";
  std::string text = SerializeOpenMetrics(
      {Family("virtcaps_refresh_duration_seconds", prometheus::MetricType::Gauge, 0.5)});
  std::setlocale(LC_ALL, saved.c_str());
  EXPECT_NE(text.find("virtcaps_refresh_duration_seconds 0.5\n"), std::string::npos) << text;
}

// SerializeText writes the text format itself (for speed): it must be prometheus-cpp's
// TextSerializer byte for byte, for every value and text it can meet.
TEST(TextFormatTest, EqualsPrometheusCppByteForByte) {
  std::vector<prometheus::MetricFamily> families;
  double values[] = {0,
                     -0.0,
                     1,
                     -1,
                     0.1 + 0.2,
                     1e-7,
                     1e15,
                     1e15 - 1,
                     1e16,
                     1e20,
                     -1e300,
                     5e-324,
                     1.0 / 3,
                     2.5e-5,
                     42e9,
                     1796309092.123,
                     123456789012345678.0,
                     std::numeric_limits<double>::quiet_NaN(),
                     std::numeric_limits<double>::infinity(),
                     -std::numeric_limits<double>::infinity()};
  prometheus::MetricFamily gauge{"virtcaps_values",
                                 "Values \\ with \"quotes\"\nand lines.",
                                 prometheus::MetricType::Gauge,
                                 {}};
  for (double value : values) {
    prometheus::ClientMetric metric;
    metric.gauge.value = value;
    metric.label = {{"label", "a\"b\\c\nd"}, {"empty", ""}};
    gauge.metric.push_back(metric);
  }
  families.push_back(gauge);
  prometheus::MetricFamily counter{
      "virtcaps_things_total", "", prometheus::MetricType::Counter, {}};
  for (double value : values) {
    prometheus::ClientMetric metric;
    metric.counter.value = value;
    counter.metric.push_back(metric);
  }
  families.push_back(counter);
  families.push_back({"virtcaps_none", "No series.", prometheus::MetricType::Gauge, {}});
  EXPECT_EQ(SerializeText(families), SerializeTextWithPrometheusCpp(families));
  // A type the agent never makes goes to prometheus-cpp itself.
  families.push_back({"virtcaps_untyped", "Untyped.", prometheus::MetricType::Untyped, {}});
  EXPECT_EQ(SerializeText(families), SerializeTextWithPrometheusCpp(families));
  // And neither depends on the C locale.
  const char* previous = std::setlocale(LC_ALL, nullptr);
  std::string saved = previous ? previous : "C";
  if (std::setlocale(LC_ALL, "de_DE.UTF-8")) {
    families.pop_back();
    std::string text = SerializeText(families);
    std::setlocale(LC_ALL, saved.c_str());
    EXPECT_EQ(text, SerializeTextWithPrometheusCpp(families));
    EXPECT_NE(text.find("} 0.3\n"), std::string::npos);
  }
}

TEST(NegotiationTest, OpenMetricsOnlyWhenPreferred) {
  EXPECT_EQ(NegotiateExpositionFormat(""), ExpositionFormat::kPrometheusText);
  EXPECT_EQ(NegotiateExpositionFormat("*/*"), ExpositionFormat::kPrometheusText);
  EXPECT_EQ(NegotiateExpositionFormat("text/plain;version=0.0.4"),
            ExpositionFormat::kPrometheusText);
  // Prometheus 2.42's scrape Accept header.
  EXPECT_EQ(NegotiateExpositionFormat(
                "application/openmetrics-text;version=1.0.0,application/openmetrics-text;"
                "version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"),
            ExpositionFormat::kOpenMetrics);
  EXPECT_EQ(NegotiateExpositionFormat("application/openmetrics-text; version=1.0.0"),
            ExpositionFormat::kOpenMetrics);
  EXPECT_EQ(NegotiateExpositionFormat("application/openmetrics-text;q=0.3,text/plain;q=0.9"),
            ExpositionFormat::kPrometheusText);
  EXPECT_EQ(NegotiateExpositionFormat("application/openmetrics-text;q=0"),
            ExpositionFormat::kPrometheusText);
  // Media types are case-insensitive; the first q of a range counts; a malformed q is 0.
  EXPECT_EQ(NegotiateExpositionFormat("APPLICATION/OpenMetrics-Text;q=0.9, TEXT/PLAIN;q=0.5"),
            ExpositionFormat::kOpenMetrics);
  EXPECT_EQ(NegotiateExpositionFormat("Text/*;q=1,application/openmetrics-text;q=0.9"),
            ExpositionFormat::kPrometheusText);
  EXPECT_EQ(NegotiateExpositionFormat("application/openmetrics-text;q=0.5;q=0.9,text/plain;q=0.7"),
            ExpositionFormat::kPrometheusText);
  EXPECT_EQ(NegotiateExpositionFormat("application/openmetrics-text;q=bad"),
            ExpositionFormat::kPrometheusText);
  EXPECT_EQ(NegotiateExpositionFormat(",,application/openmetrics-text"),
            ExpositionFormat::kOpenMetrics);
}

TEST(CollectorSelectionTest, CollectExcludeAndUnknownNames) {
  std::vector<std::string> available = {"cpu", "kvm", "numa", "qemu"};
  auto none = SelectCollectors("", available);
  ASSERT_TRUE(none);
  EXPECT_FALSE(*none);
  auto other = SelectCollectors("foo=bar", available);
  ASSERT_TRUE(other);
  EXPECT_FALSE(*other);
  auto collect = SelectCollectors("collect[]=cpu&collect%5B%5D=qemu", available);
  ASSERT_TRUE(collect && *collect);
  EXPECT_EQ(**collect, (std::set<std::string>{"cpu", "qemu"}));
  auto exclude = SelectCollectors("exclude[]=numa", available);
  ASSERT_TRUE(exclude && *exclude);
  EXPECT_EQ(**exclude, (std::set<std::string>{"cpu", "kvm", "qemu"}));
  auto both = SelectCollectors("collect[]=cpu&collect[]=kvm&exclude[]=kvm", available);
  ASSERT_TRUE(both && *both);
  EXPECT_EQ(**both, (std::set<std::string>{"cpu"}));
  auto unknown = SelectCollectors("collect[]=cpu&exclude[]=gpu", available);
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.error(),
            "unknown or disabled collector 'gpu'; collectors: cpu, kvm, numa, qemu");
  EXPECT_FALSE(SelectCollectors("collect[]=", available));
}

TEST(RequestCountersTest, CountsPerPathAndCodeWithBoundedLabels) {
  RequestCounters counters("/metrics");
  counters.Count("/metrics", 200);
  counters.Count("/metrics", 200);
  counters.Count("/metrics", 400);
  counters.Count("/no/such/path", 404);
  counters.Count("/healthz", 418);  // not a listed code: "other"
  prometheus::MetricFamily family = counters.Family();
  EXPECT_EQ(family.name, "virtcaps_http_requests_total");
  std::map<std::pair<std::string, std::string>, double> seen;
  for (const auto& metric : family.metric) {
    ASSERT_EQ(metric.label.size(), 2u);
    seen[{metric.label[1].value, metric.label[0].value}] = metric.counter.value;
  }
  EXPECT_EQ((seen[{"/metrics", "200"}]), 2);
  EXPECT_EQ((seen[{"/metrics", "400"}]), 1);
  EXPECT_EQ((seen[{"other", "404"}]), 1);
  EXPECT_EQ((seen[{"/healthz", "other"}]), 1);
  EXPECT_EQ(seen.count({"/capabilities", "200"}), 1u);  // present from the start, as 0
  EXPECT_EQ(seen.count({"/domcapabilities", "200"}), 1u);
  // 200 of the five known paths, plus /metrics 400, other 404 and /healthz other.
  EXPECT_EQ(seen.size(), 8u);
}

// The live families are written without building them (no allocation per scrape):
// the bytes must be those the serializers make of the built families, in both formats,
// for awkward values too (fractions, huge, NaN, infinite, absent).
TEST(ProcessStatsTest, LiveFamiliesAreWhatTheSerializersWouldWrite) {
  RequestCounters counters("/metrics");
  counters.Count("/metrics", 200);
  counters.Count("/healthz", 418);
  counters.Count("/nowhere", 404);
  std::vector<ProcessSample> samples;
  samples.push_back(ProcessStats().Sample());  // this process, as a scrape reads it
  ProcessSample odd;
  odd.cpu_seconds = 0.1 + 0.2;
  odd.resident_bytes = 123456789012345678.0;
  odd.virtual_bytes = std::numeric_limits<double>::quiet_NaN();
  odd.start_time_seconds = 1796309092.123456;
  odd.max_fds = std::numeric_limits<double>::infinity();
  odd.threads = 1.0 / 3;  // open_fds absent: its family is left out
  samples.push_back(odd);
  // Whole numbers, which are written without to_chars' precision path: with and without
  // trailing zeros (OpenMetrics' shortest form writes 1000000 as 1e+06), zero and -0,
  // and either side of 1e15.
  ProcessSample whole;
  whole.cpu_seconds = 0;
  whole.resident_bytes = 10002432;
  whole.virtual_bytes = 1000000;
  whole.start_time_seconds = 999999999999999;
  whole.open_fds = -0.0;
  whole.max_fds = 1e15;
  whole.threads = 7;
  samples.push_back(whole);
  whole.cpu_seconds = 10;
  whole.resident_bytes = 1e16;
  whole.virtual_bytes = 123456789;
  whole.open_fds = 100;
  whole.max_fds = 1e15 + 1;
  samples.push_back(whole);
  // Both formats' texts, each checked against what the serializers make.
  auto written_as_serialized = [](const ProcessSample& sample, const RequestCounters& requests) {
    std::vector<std::string> texts;
    for (ExpositionFormat format :
         {ExpositionFormat::kPrometheusText, ExpositionFormat::kOpenMetrics}) {
      std::vector<prometheus::MetricFamily> families = ProcessStats::Families(sample);
      families.push_back(requests.Family());
      char buffer[4096];
      FixedText text(buffer, sizeof(buffer));
      AppendLiveFamilies(text, format, sample, requests);
      EXPECT_FALSE(text.overflowed());
      EXPECT_EQ(text.view(), Serialize(families, format));
      texts.emplace_back(text.view());
    }
    return texts;
  };
  for (const ProcessSample& sample : samples) written_as_serialized(sample, counters);
  // Label values with every character the text formats escape, at the ends too.
  RequestCounters odd_path("\"/a\\b\nc\"\\");
  odd_path.Count("\"/a\\b\nc\"\\", 200);
  for (const std::string& text : written_as_serialized(odd, odd_path)) {
    EXPECT_NE(text.find("path=\"\\\"/a\\\\b\\nc\\\"\\\\\"} 1"), std::string::npos) << text;
  }
  char small[16];
  FixedText cut(small, sizeof(small));
  AppendLiveFamilies(cut, ExpositionFormat::kPrometheusText, samples[0], counters);
  EXPECT_TRUE(cut.overflowed());
  EXPECT_EQ(cut.view(), "# HELP process_c");
}

TEST(ProcessStatsTest, RecentReusesASampleOnlyWhileItIsYoungEnough) {
  ProcessStats stats;
  ProcessSample first = stats.Recent(std::chrono::hours(1));
  EXPECT_EQ(stats.samples_taken(), 1u);
  ASSERT_TRUE(first.threads);
  // Another thread now: a reused sample still says what /proc said before it.
  std::atomic<bool> stop{false};
  std::thread extra([&] {
    while (!stop) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  });
  ProcessSample reused = stats.Recent(std::chrono::hours(1));
  EXPECT_EQ(stats.samples_taken(), 1u);
  EXPECT_EQ(reused.threads, first.threads);
  ProcessSample fresh = stats.Recent(std::chrono::milliseconds(0));
  EXPECT_EQ(stats.samples_taken(), 2u);
  EXPECT_EQ(fresh.threads.value_or(0), first.threads.value_or(0) + 1);
  stop = true;
  extra.join();
}

TEST(ProcessStatsTest, ReadsThisProcess) {
  ProcessStats stats;
  std::map<std::string, double> values;
  for (const auto& family : stats.Families()) {
    ASSERT_EQ(family.metric.size(), 1u) << family.name;
    values[family.name] = family.type == prometheus::MetricType::Counter
                              ? family.metric[0].counter.value
                              : family.metric[0].gauge.value;
  }
  ASSERT_EQ(values.size(), 7u);
  EXPECT_GT(values["process_resident_memory_bytes"], 1 << 20);
  EXPECT_GT(values["process_virtual_memory_bytes"], values["process_resident_memory_bytes"]);
  EXPECT_GE(values["process_threads"], 1);
  EXPECT_GE(values["process_open_fds"], 3);  // at least stdin, stdout, stderr
  EXPECT_GE(values["process_max_fds"], values["process_open_fds"]);
  EXPECT_GE(values["process_cpu_seconds_total"], 0);
  double now = static_cast<double>(std::time(nullptr));
  EXPECT_LE(values["process_start_time_seconds"], now + 1);
  EXPECT_GT(values["process_start_time_seconds"], now - 24 * 3600);  // started by this test run
}

TEST(GzipSpliceTest, OpenBodyPlusTailIsOneValidMember) {
  std::string body(20000, 'x');
  for (size_t i = 0; i < body.size(); i += 7) body[i] = static_cast<char>('a' + i % 26);
  OpenGzip open = GzipOpen(body);
  std::string tail = "# HELP process_threads Threads.\nprocess_threads 3\n";
  std::string whole = open.bytes + GzipClose(open, tail);
  EXPECT_EQ(testing::Gunzip(whole), body + tail);  // Gunzip reads only the first member
  EXPECT_EQ(testing::Gunzip(open.bytes + GzipClose(open, "")), body);
}

// The allocation-free close: the same bytes as GzipClose, zlib's state in the caller's
// scratch memory; too little scratch or output room is a 0, never a cut member.
TEST(GzipSpliceTest, CloseIntoScratchMemoryMakesTheSameBytes) {
  std::string body = "process_threads 3\n";
  OpenGzip open = GzipOpen(body);
  std::vector<char> scratch(kGzipCloseScratchBytes);
  std::vector<char> out(8192);
  std::string tail;
  for (int i = 0; i < 60; ++i)
    tail += "virtcaps_http_requests_total{code=\"200\"} " + std::to_string(i * i) + "\n";
  for (std::string_view piece : {std::string_view(), std::string_view(tail)}) {
    size_t written =
        GzipCloseInto(open, piece, out.data(), out.size(), scratch.data(), scratch.size());
    ASSERT_GT(written, 8u);
    EXPECT_EQ(std::string(out.data(), written), GzipClose(open, piece));
    EXPECT_EQ(testing::Gunzip(open.bytes + std::string(out.data(), written)),
              body + std::string(piece));
  }
  size_t whole = GzipCloseInto(open, tail, out.data(), out.size(), scratch.data(), scratch.size());
  EXPECT_EQ(GzipCloseInto(open, tail, out.data(), whole - 1, scratch.data(), scratch.size()), 0u);
  EXPECT_EQ(GzipCloseInto(open, tail, out.data(), 7, scratch.data(), scratch.size()), 0u);
  EXPECT_EQ(GzipCloseInto(open, tail, out.data(), out.size(), scratch.data(), 1024), 0u);
}

TEST(LogFormatTest, LogfmtEscapesEveryControlCharacter) {
  std::string line = FormatLogRecord(LogConfig::Format::kLogfmt, "T", "info", "a\tb",
                                     {{"path", "x\ny\rz\x1b[31m\x7f"}, {"plain", "ok"}});
  EXPECT_EQ(line, "ts=T level=info msg=\"a\\tb\" path=\"x\\ny\\rz\\u001b[31m\\u007f\" plain=ok");
  for (char c : line) EXPECT_FALSE(static_cast<unsigned char>(c) < 0x20 || c == 0x7f);
}

TEST(LogFormatTest, JsonIsOneObjectPerLine) {
  std::string line = FormatLogRecord(LogConfig::Format::kJson, "T", "warn", "say \"hi\"",
                                     {{"error", "a\\b\n\x01"}});
  EXPECT_EQ(line,
            "{\"ts\":\"T\",\"level\":\"warn\",\"msg\":\"say \\\"hi\\\"\",\"error\":\"a\\\\b\\n"
            "\\u0001\"}");
}

TEST(OperatorFlagsTest, DisableDefaultsFlagsIncludeAndLogFormat) {
  auto collectors = CollectorDefaults();
  auto cli = ParseCommandLine({"--collector.disable-defaults", "--collector.kvm",
                               "--collector.cpu.flags-include=avx.*", "--log.format=json"},
                              collectors);
  ASSERT_TRUE(cli) << cli.error();
  auto config = ResolveConfig(*cli, collectors);
  ASSERT_TRUE(config) << config.error();
  for (const auto& [name, enabled] : config->collectors) {
    EXPECT_EQ(enabled, name == "kvm") << name;
  }
  EXPECT_EQ(config->collector_options.cpu_flags_include, "avx.*");
  EXPECT_EQ(config->log.format, LogConfig::Format::kJson);
  EXPECT_FALSE(ParseCommandLine({"--log.format=xml"}, collectors));
  auto bad = ParseCommandLine({"--collector.cpu.flags-include=avx("}, collectors);
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().find("--collector.cpu.flags-include: not a valid regular expression"),
            std::string::npos)
      << bad.error();
  auto once = ParseCommandLine({"--once", "--format=openmetrics"}, collectors);
  ASSERT_TRUE(once);
  EXPECT_EQ(once->once_format, CommandLine::Format::kOpenMetrics);
}

TEST(OperatorFlagsTest, FlagsIncludeInYamlIsCheckedWithItsLocation) {
  auto collectors = CollectorDefaults();
  auto good =
      ParseConfig("collectors:\n  cpu:\n    flags_include: 'vmx|svm'\n", "c.yaml", ".", collectors);
  ASSERT_TRUE(good) << good.error();
  EXPECT_EQ(good->collector_options.cpu_flags_include, "vmx|svm");
  auto bad =
      ParseConfig("collectors:\n  cpu:\n    flags_include: '[vmx'\n", "c.yaml", ".", collectors);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().rfind("c.yaml:3:20: collectors.cpu.flags_include: not a valid", 0), 0u)
      << bad.error();
  // Only the cpu collector has the key.
  EXPECT_FALSE(
      ParseConfig("collectors:\n  kvm:\n    flags_include: 'x'\n", "c.yaml", ".", collectors));
  auto json = ParseConfig("log:\n  format: json\n", "c.yaml", ".", collectors);
  ASSERT_TRUE(json) << json.error();
  EXPECT_EQ(json->log.format, LogConfig::Format::kJson);
}

}  // namespace
}  // namespace virtcaps
