// The OpenMetrics 1.0 text format, written by hand: prometheus-cpp 1.0.1 has no
// serializer for it. Rules from the OpenMetrics specification: counter families drop
// the _total of their sample name, info families drop _info, a # UNIT must be a suffix
// of the family name, and the exposition ends with "# EOF" (added by the caller).
#include <prometheus/text_serializer.h>

#include <charconv>
#include <cmath>
#include <cstdint>
#include <string_view>

#include "virtcaps/exposition.h"

namespace virtcaps {

namespace {

bool EndsWith(std::string_view text, std::string_view suffix) {
  return text.size() >= suffix.size() && text.substr(text.size() - suffix.size()) == suffix;
}

// Help and label values: backslash, double quote and newline escaped.
void AppendEscaped(std::string& out, std::string_view text) {
  for (char c : text) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
}

// Shortest text that reads back as the same double; never locale-dependent.
void AppendNumber(std::string& out, double value) {
  if (std::isnan(value)) {
    out += "NaN";
    return;
  }
  if (std::isinf(value)) {
    out += value > 0 ? "+Inf" : "-Inf";
    return;
  }
  char buffer[32];
  auto result = std::to_chars(buffer, buffer + sizeof(buffer), value);
  out.append(buffer, result.ptr);
}

bool IsInfoFamily(const prometheus::MetricFamily& family) {
  if (family.type != prometheus::MetricType::Gauge || !EndsWith(family.name, "_info")) return false;
  for (const prometheus::ClientMetric& metric : family.metric) {
    if (metric.gauge.value != 1) return false;
  }
  return true;
}

void AppendSample(std::string& out, std::string_view name, const prometheus::ClientMetric& metric,
                  double value) {
  out += name;
  if (!metric.label.empty()) {
    out += '{';
    for (size_t i = 0; i < metric.label.size(); ++i) {
      if (i > 0) out += ',';
      out += metric.label[i].name;
      out += "=\"";
      AppendEscaped(out, metric.label[i].value);
      out += '"';
    }
    out += '}';
  }
  out += ' ';
  AppendNumber(out, value);
  out += '\n';
}

}  // namespace

namespace {

// A value as prometheus-cpp 1.0.1 writes it: 16 significant digits (%.16g in the C
// locale, whatever the process's locale), "Nan", "+Inf", "-Inf". Integers, most of the
// values, take the short way; they print the same.
void AppendTextValue(std::string& out, double value) {
  if (std::isnan(value)) {
    out += "Nan";
    return;
  }
  if (std::isinf(value)) {
    out += value < 0 ? "-Inf" : "+Inf";
    return;
  }
  char buffer[40];
  std::to_chars_result result;
  if (value == std::trunc(value) && std::fabs(value) < 1e15 &&
      !(value == 0 && std::signbit(value))) {
    result = std::to_chars(buffer, buffer + sizeof(buffer), static_cast<int64_t>(value));
  } else {
    result = std::to_chars(buffer, buffer + sizeof(buffer), value, std::chars_format::general, 16);
  }
  out.append(buffer, result.ptr);
}

// Label values: backslash, double quote and newline escaped.
void AppendLabelValue(std::string& out, std::string_view text) { AppendEscaped(out, text); }

// Whether SerializeTextDirect writes these families as prometheus-cpp would: gauges and
// counters without timestamps, all the agent makes. Anything else goes to prometheus-cpp.
bool DirectlySerializable(const std::vector<prometheus::MetricFamily>& families) {
  for (const prometheus::MetricFamily& family : families) {
    if (family.type != prometheus::MetricType::Gauge &&
        family.type != prometheus::MetricType::Counter) {
      return false;
    }
    for (const prometheus::ClientMetric& metric : family.metric) {
      if (metric.timestamp_ms != 0) return false;
    }
  }
  return true;
}

}  // namespace

// The text format 0.0.4 exactly as prometheus-cpp 1.0.1's TextSerializer writes it
// (HELP left out when empty and not escaped, label values escaped, values as above),
// straight into one string: its ostream and locale-aware number formatting took half
// of a warm refresh's rendering. Tested byte for byte against prometheus-cpp.
std::string SerializeText(const std::vector<prometheus::MetricFamily>& families) {
  if (!DirectlySerializable(families)) {
    prometheus::TextSerializer serializer;
    return serializer.Serialize(families);
  }
  std::string out;
  size_t estimate = 0;
  for (const prometheus::MetricFamily& family : families) {
    estimate += family.help.size() + 2 * family.name.size() + 32 +
                family.metric.size() * (family.name.size() + 48);
  }
  out.reserve(estimate);
  for (const prometheus::MetricFamily& family : families) {
    bool counter = family.type == prometheus::MetricType::Counter;
    if (!family.help.empty()) {
      out += "# HELP ";
      out += family.name;
      out += ' ';
      out += family.help;
      out += '\n';
    }
    out += "# TYPE ";
    out += family.name;
    out += counter ? " counter\n" : " gauge\n";
    for (const prometheus::ClientMetric& metric : family.metric) {
      out += family.name;
      if (!metric.label.empty()) {
        out += '{';
        for (size_t i = 0; i < metric.label.size(); ++i) {
          if (i > 0) out += ',';
          out += metric.label[i].name;
          out += "=\"";
          AppendLabelValue(out, metric.label[i].value);
          out += '"';
        }
        out += '}';
      }
      out += ' ';
      AppendTextValue(out, counter ? metric.counter.value : metric.gauge.value);
      out += '\n';
    }
  }
  return out;
}

std::string SerializeTextWithPrometheusCpp(const std::vector<prometheus::MetricFamily>& families) {
  prometheus::TextSerializer serializer;
  return serializer.Serialize(families);
}

std::string SerializeOpenMetrics(const std::vector<prometheus::MetricFamily>& families) {
  std::string out;
  for (const prometheus::MetricFamily& family : families) {
    std::string_view sample_name = family.name;
    std::string_view family_name = sample_name;
    std::string_view type;
    bool counter = family.type == prometheus::MetricType::Counter;
    if (counter) {
      type = "counter";
      if (EndsWith(family_name, "_total")) family_name.remove_suffix(6);
    } else if (IsInfoFamily(family)) {
      type = "info";
      family_name.remove_suffix(5);
    } else {
      type = "gauge";  // the agent exports no other types
    }
    out += "# TYPE ";
    out += family_name;
    out += ' ';
    out += type;
    out += '\n';
    for (std::string_view unit : {"seconds", "bytes"}) {
      if (EndsWith(family_name, std::string("_") + std::string(unit))) {
        out += "# UNIT ";
        out += family_name;
        out += ' ';
        out += unit;
        out += '\n';
      }
    }
    out += "# HELP ";
    out += family_name;
    out += ' ';
    AppendEscaped(out, family.help);
    out += '\n';
    std::string counter_sample;
    if (counter && family_name == sample_name) {
      counter_sample = std::string(family_name) + "_total";  // OpenMetrics requires it
      sample_name = counter_sample;
    }
    for (const prometheus::ClientMetric& metric : family.metric) {
      AppendSample(out, sample_name, metric, counter ? metric.counter.value : metric.gauge.value);
    }
  }
  return out;
}

std::string Serialize(const std::vector<prometheus::MetricFamily>& families,
                      ExpositionFormat format) {
  return format == ExpositionFormat::kOpenMetrics ? SerializeOpenMetrics(families)
                                                  : SerializeText(families);
}

}  // namespace virtcaps
