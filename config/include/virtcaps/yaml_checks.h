// Strict reading of YAML nodes with errors that name "file:line:column: key.path".
// Shared by the agent's configuration and its web configuration parsers.
#pragma once

#include <yaml-cpp/yaml.h>

#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "virtcaps/config.h"

namespace virtcaps {

// Thrown by YamlChecks and turned into a Status at the parser's edge.
struct YamlCheckError {
  std::string message;
};

class YamlChecks {
 public:
  // `source` names the file in errors; relative file paths resolve against `base_dir`.
  YamlChecks(std::string source, std::string base_dir)
      : source_(std::move(source)), base_dir_(std::move(base_dir)) {}

  const std::string& source() const { return source_; }

  [[noreturn]] void Fail(const YAML::Node& node, const std::string& key_path,
                         const std::string& message) const;
  static std::string Join(const std::string& path, const std::string& key);
  static std::string Describe(const YAML::Node& node);

  void ExpectMap(const YAML::Node& node, const std::string& path) const;
  // Unknown or duplicate keys are errors: a typo must not silently fall back to a
  // default. Keys in `unsupported` are refused with `unsupported_message`.
  void CheckKeys(const YAML::Node& node, const std::string& path,
                 const std::set<std::string>& allowed,
                 const std::set<std::string>& unsupported = {},
                 const std::string& unsupported_message = "not supported") const;

  std::string StringValue(const YAML::Node& node, const std::string& path) const;
  bool BoolValue(const YAML::Node& node, const std::string& path) const;
  int64_t IntValue(const YAML::Node& node, const std::string& path, int64_t min, int64_t max) const;
  Duration DurationValue(const YAML::Node& node, const std::string& path, Duration min,
                         Duration max) const;
  std::vector<std::string> StringList(const YAML::Node& node, const std::string& path) const;
  std::string AbsolutePath(const YAML::Node& node, const std::string& path) const;
  // A file path; relative ones resolve against the config file's directory.
  std::string FilePath(const YAML::Node& node, const std::string& path) const;

  template <typename Enum>
  Enum EnumValue(const YAML::Node& node, const std::string& path,
                 const std::vector<std::pair<std::string, Enum>>& choices) const {
    std::string text = StringValue(node, path);
    std::string names;
    for (const auto& [name, value] : choices) {
      if (name == text) return value;
      names += (names.empty() ? "" : ", ") + name;
    }
    Fail(node, path, "expected one of " + names + ", got '" + text + "'");
  }

  // "file:line:column: invalid YAML: ..." for a yaml-cpp parse error.
  std::string ParseErrorMessage(const YAML::Exception& error) const;

 private:
  std::string source_;
  std::string base_dir_;
};

// Runs `parser.Parse` on a YAML document; check failures and YAML syntax errors
// become a Status naming file, line and column.
template <typename Result, typename Parser>
Expected<Result> ParseYamlDocument(Parser& parser, std::string_view text) {
  try {
    return parser.Parse(YAML::Load(std::string(text)));
  } catch (const YamlCheckError& error) {
    return Status::Error(error.message);
  } catch (const YAML::Exception& error) {
    return Status::Error(parser.ParseErrorMessage(error));
  }
}

}  // namespace virtcaps
