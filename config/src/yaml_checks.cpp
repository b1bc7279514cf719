#include "virtcaps/yaml_checks.h"

#include "virtcaps/files.h"
#include "virtcaps/strings.h"

namespace virtcaps {

namespace {
std::string Where(const std::string& source, const YAML::Mark& mark) {
  if (mark.line < 0) return source;
  return source + ":" + std::to_string(mark.line + 1) + ":" + std::to_string(mark.column + 1);
}
}  // namespace

void YamlChecks::Fail(const YAML::Node& node, const std::string& key_path,
                      const std::string& message) const {
  throw YamlCheckError{Where(source_, node.Mark()) + ": " +
                       (key_path.empty() ? "" : key_path + ": ") + message};
}

std::string YamlChecks::Join(const std::string& path, const std::string& key) {
  return path.empty() ? key : path + "." + key;
}

std::string YamlChecks::Describe(const YAML::Node& node) {
  if (node.IsScalar()) return "'" + node.Scalar() + "'";
  if (node.IsSequence()) return "a list";
  if (node.IsMap()) return "a mapping";
  return "nothing";
}

void YamlChecks::ExpectMap(const YAML::Node& node, const std::string& path) const {
  if (!node.IsMap()) Fail(node, path, "expected a mapping, got " + Describe(node));
}

void YamlChecks::CheckKeys(const YAML::Node& node, const std::string& path,
                           const std::set<std::string>& allowed,
                           const std::set<std::string>& unsupported,
                           const std::string& unsupported_message) const {
  std::set<std::string> seen;
  for (const auto& entry : node) {
    const YAML::Node& key = entry.first;
    if (!key.IsScalar()) Fail(key, path, "keys must be plain strings");
    const std::string& name = key.Scalar();
    if (!seen.insert(name).second) Fail(key, Join(path, name), "duplicate key");
    if (unsupported.count(name)) Fail(key, Join(path, name), unsupported_message);
    if (!allowed.count(name)) {
      std::string expected;
      for (const std::string& option : allowed) expected += (expected.empty() ? "" : ", ") + option;
      Fail(key, Join(path, name), "unknown key (expected one of: " + expected + ")");
    }
  }
}

std::string YamlChecks::StringValue(const YAML::Node& node, const std::string& path) const {
  if (!node.IsScalar()) Fail(node, path, "expected a string, got " + Describe(node));
  return node.Scalar();
}

bool YamlChecks::BoolValue(const YAML::Node& node, const std::string& path) const {
  if (node.IsScalar()) {
    const std::string& text = node.Scalar();
    if (text == "true" || text == "True" || text == "TRUE") return true;
    if (text == "false" || text == "False" || text == "FALSE") return false;
  }
  Fail(node, path, "expected true or false, got " + Describe(node));
}

int64_t YamlChecks::IntValue(const YAML::Node& node, const std::string& path, int64_t min,
                             int64_t max) const {
  std::optional<int64_t> value;
  if (node.IsScalar()) value = ParseInt(node.Scalar());
  if (!value) Fail(node, path, "expected an integer, got " + Describe(node));
  if (*value < min || *value > max) {
    Fail(node, path,
         "out of range: " + std::to_string(*value) + " (allowed " + std::to_string(min) + ".." +
             std::to_string(max) + ")");
  }
  return *value;
}

Duration YamlChecks::DurationValue(const YAML::Node& node, const std::string& path, Duration min,
                                   Duration max) const {
  std::optional<Duration> value;
  if (node.IsScalar()) value = ParseDuration(node.Scalar());
  if (!value) Fail(node, path, "expected a duration such as 30s, 5m or 1h, got " + Describe(node));
  if (*value < min || *value > max) {
    Fail(node, path,
         "out of range: " + node.Scalar() + " (allowed " + FormatDuration(min) + ".." +
             FormatDuration(max) + ")");
  }
  return *value;
}

std::vector<std::string> YamlChecks::StringList(const YAML::Node& node,
                                                const std::string& path) const {
  if (!node.IsSequence()) Fail(node, path, "expected a list, got " + Describe(node));
  std::vector<std::string> values;
  for (size_t i = 0; i < node.size(); ++i) {
    values.push_back(StringValue(node[i], path + "[" + std::to_string(i) + "]"));
  }
  return values;
}

std::string YamlChecks::AbsolutePath(const YAML::Node& node, const std::string& path) const {
  std::string value = StringValue(node, path);
  if (value.empty() || value.front() != '/') Fail(node, path, "expected an absolute path");
  return value;
}

std::string YamlChecks::FilePath(const YAML::Node& node, const std::string& path) const {
  std::string value = StringValue(node, path);
  if (value.empty()) Fail(node, path, "expected a file path");
  if (value.front() == '/') return value;
  return JoinPath(base_dir_.empty() ? "." : base_dir_, value);
}

std::string YamlChecks::ParseErrorMessage(const YAML::Exception& error) const {
  return Where(source_, error.mark) + ": invalid YAML: " + error.msg;
}

}  // namespace virtcaps
