// Metric families (prometheus-cpp's data model) to text, in either exposition format.
// Shared by the snapshot renderer and the server's live families (process, requests).
#pragma once

#include <prometheus/metric_family.h>

#include <string>
#include <vector>

namespace virtcaps {

enum class ExpositionFormat { kPrometheusText, kOpenMetrics };

inline constexpr std::string_view kPrometheusTextContentType =
    "text/plain; version=0.0.4; charset=utf-8";
inline constexpr std::string_view kOpenMetricsContentType =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";
inline constexpr std::string_view kOpenMetricsEof = "# EOF\n";

// Families as the Prometheus text format 0.0.4 writes them (prometheus-cpp's serializer).
std::string SerializeText(const std::vector<prometheus::MetricFamily>& families);
// prometheus-cpp's own TextSerializer, which SerializeText must equal byte for byte (tests).
std::string SerializeTextWithPrometheusCpp(const std::vector<prometheus::MetricFamily>& families);

// Families in the OpenMetrics 1.0 text format, without the closing "# EOF". Counters
// named NAME_total become family NAME with sample NAME_total; gauges named NAME_info
// whose samples are all 1 become info family NAME; _seconds and _bytes families get a
// # UNIT line. Numbers are locale-independent and round-trip exactly.
std::string SerializeOpenMetrics(const std::vector<prometheus::MetricFamily>& families);

std::string Serialize(const std::vector<prometheus::MetricFamily>& families,
                      ExpositionFormat format);

}  // namespace virtcaps
