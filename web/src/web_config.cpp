#include "virtcaps/web_config.h"

#include "virtcaps/yaml_checks.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <set>
#include <utility>
#include <vector>

#include "virtcaps/files.h"
#include "virtcaps/strings.h"

namespace virtcaps {

namespace {

// exporter-toolkit's list: only these security headers may be configured, and two of
// them only with these values.
const std::map<std::string, std::vector<std::string>>& ConfigurableHeaders() {
  static const std::map<std::string, std::vector<std::string>> kHeaders = {
      {"Content-Security-Policy", {}},
      {"Strict-Transport-Security", {}},
      {"X-Content-Type-Options", {"nosniff"}},
      {"X-Frame-Options", {"deny", "sameorigin"}},
      {"X-XSS-Protection", {}},
  };
  return kHeaders;
}

// exporter-toolkit keys this agent does not implement. They are refused by name, so a
// copied node_exporter web config fails loudly instead of silently losing a setting.
const std::set<std::string> kUnsupportedTlsKeys = {
    "cert", "key", "client_ca", "curve_preferences", "max_version", "client_allowed_sans"};

constexpr const char* kUnsupportedMessage =
    "exporter-toolkit setting not supported by virtcaps-agent";

// Go's names (exporter-toolkit's cipher_suites) of the TLS 1.2 suites we allow, and
// OpenSSL's names for them.
const std::vector<std::pair<std::string, std::string>>& AllowedCipherSuites() {
  static const std::vector<std::pair<std::string, std::string>> kSuites = {
      {"TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", "ECDHE-ECDSA-AES128-GCM-SHA256"},
      {"TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "ECDHE-RSA-AES128-GCM-SHA256"},
      {"TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", "ECDHE-ECDSA-AES256-GCM-SHA384"},
      {"TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", "ECDHE-RSA-AES256-GCM-SHA384"},
      {"TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256", "ECDHE-ECDSA-CHACHA20-POLY1305"},
      {"TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256", "ECDHE-RSA-CHACHA20-POLY1305"},
  };
  return kSuites;
}

constexpr size_t kMaxHeaderBytes = 2048;  // all configured headers together

// A bcrypt hash as crypt(3) writes it: $2y$NN$ + 22 salt + 31 hash characters.
bool IsBcryptHash(const std::string& hash) {
  if (hash.size() != 60 || hash.compare(0, 2, "$2") != 0) return false;
  if (hash[2] != 'a' && hash[2] != 'b' && hash[2] != 'y') return false;
  if (hash[3] != '$' || hash[6] != '$') return false;
  if (hash[4] < '0' || hash[4] > '9' || hash[5] < '0' || hash[5] > '9') return false;
  auto cost = ParseUint(std::string_view(hash).substr(4, 2));
  if (!cost || *cost < 4 || *cost > 31) return false;  // higher costs: a message of their own
  for (size_t i = 7; i < hash.size(); ++i) {
    char c = hash[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '/';
    if (!ok) return false;
  }
  return true;
}

class Parser : public YamlChecks {
 public:
  Parser(std::string source, std::string base_dir)
      : YamlChecks(std::move(source), std::move(base_dir)) {}

  WebConfigFile Parse(const YAML::Node& root) {
    WebConfigFile config;
    config.source = source();
    // An empty (or truncated-to-nothing) file is a mistake, not "no TLS, no auth": the
    // way to serve plain HTTP without auth is to leave out --web.config.file.
    if (!root || root.IsNull()) {
      Fail(root, "", "the web config is empty (leave out --web.config.file to serve plain HTTP)");
    }
    ExpectMap(root, "");
    CheckKeys(root, "", {"tls_server_config", "http_server_config", "basic_auth_users"},
              {"rate_limit"}, kUnsupportedMessage);
    if (auto node = root["tls_server_config"]) {
      if (node.IsNull()) {
        Fail(node, "tls_server_config",
             "empty: needs cert_file and key_file (leave the key out to serve plain HTTP)");
      }
      ParseTls(node, config.tls);
    }
    if (auto node = root["http_server_config"]; node && !node.IsNull()) {
      ParseHttp(node, config.headers);
    }
    if (auto node = root["basic_auth_users"]) {
      // `basic_auth_users:` with nothing after it (a file cut short) must not turn auth off.
      if (node.IsNull() || node.size() == 0)
        Fail(node, "basic_auth_users", "needs at least one user");
      ParseUsers(node, config.basic_auth_users);
    }
    return config;
  }

 private:
  void ParseTls(const YAML::Node& node, TlsServerConfig& tls) const {
    using ClientAuth = TlsServerConfig::ClientAuth;
    const std::string path = "tls_server_config";
    ExpectMap(node, path);
    CheckKeys(node, path,
              {"cert_file", "key_file", "client_auth_type", "client_ca_file", "min_version",
               "prefer_server_cipher_suites", "cipher_suites"},
              kUnsupportedTlsKeys, kUnsupportedMessage);
    // Present at all means HTTPS: `tls_server_config: {}` must not quietly serve plain HTTP.
    tls.enabled = true;
    if (auto value = node["cipher_suites"]) {
      std::vector<std::string> names = StringList(value, path + ".cipher_suites");
      if (names.empty()) Fail(value, path + ".cipher_suites", "needs at least one suite");
      tls.cipher_suites.clear();
      for (size_t i = 0; i < names.size(); ++i) {
        std::string openssl_name;
        std::string choices;
        for (const auto& [go_name, ossl_name] : AllowedCipherSuites()) {
          if (go_name == names[i]) openssl_name = ossl_name;
          choices += (choices.empty() ? "" : ", ") + go_name;
        }
        if (openssl_name.empty()) {
          Fail(value[i], path + ".cipher_suites[" + std::to_string(i) + "]",
               "'" + names[i] + "' is not offered (only ECDHE key exchange with AEAD ciphers): " +
                   "expected one of " + choices);
        }
        tls.cipher_suites.push_back(openssl_name);
      }
    }
    if (auto value = node["cert_file"]) tls.cert_file = FilePath(value, path + ".cert_file");
    if (auto value = node["key_file"]) tls.key_file = FilePath(value, path + ".key_file");
    if (auto value = node["client_ca_file"]) {
      tls.client_ca_file = FilePath(value, path + ".client_ca_file");
    }
    if (auto value = node["prefer_server_cipher_suites"]) {
      BoolValue(value, path + ".prefer_server_cipher_suites");  // OpenSSL's choice; accepted
    }
    if (auto value = node["client_auth_type"]) {
      static const std::vector<std::pair<std::string, ClientAuth>> kChoices = {
          {"NoClientCert", ClientAuth::kNoClientCert},
          {"RequestClientCert", ClientAuth::kRequestClientCert},
          {"RequireAnyClientCert", ClientAuth::kRequireAnyClientCert},
          {"RequireClientCert", ClientAuth::kRequireAnyClientCert},  // exporter-toolkit's old name
          {"VerifyClientCertIfGiven", ClientAuth::kVerifyClientCertIfGiven},
          {"RequireAndVerifyClientCert", ClientAuth::kRequireAndVerifyClientCert},
      };
      std::string text = StringValue(value, path + ".client_auth_type");
      std::string names;
      bool found = false;
      for (const auto& [name, choice] : kChoices) {
        if (name == text) {
          tls.client_auth = choice;
          found = true;
        }
        if (name != "RequireClientCert") names += (names.empty() ? "" : ", ") + name;
      }
      if (!found) {
        Fail(value, path + ".client_auth_type",
             "expected one of " + names + ", got '" + text + "'");
      }
    }
    if (auto value = node["min_version"]) {
      std::string text = StringValue(value, path + ".min_version");
      if (text == "TLS12") {
        tls.min_version = TlsServerConfig::Version::kTls12;
      } else if (text == "TLS13") {
        tls.min_version = TlsServerConfig::Version::kTls13;
      } else if (text == "TLS10" || text == "TLS11") {
        Fail(value, path + ".min_version", text + " is not supported; use TLS12 or TLS13");
      } else {
        Fail(value, path + ".min_version", "expected TLS12 or TLS13, got '" + text + "'");
      }
    }
    if (!tls.enabled) return;
    if (tls.cert_file.empty()) Fail(node, path + ".cert_file", "required to serve HTTPS");
    if (tls.key_file.empty()) Fail(node, path + ".key_file", "required to serve HTTPS");
    bool verifies = tls.client_auth == ClientAuth::kVerifyClientCertIfGiven ||
                    tls.client_auth == ClientAuth::kRequireAndVerifyClientCert;
    if (verifies && tls.client_ca_file.empty()) {
      Fail(node, path + ".client_ca_file", "required to verify client certificates");
    }
    if (tls.client_auth == ClientAuth::kNoClientCert && !tls.client_ca_file.empty()) {
      Fail(node["client_ca_file"], path + ".client_ca_file",
           "set, but client_auth_type is NoClientCert (no client certificate is asked for)");
    }
  }

  void ParseHttp(const YAML::Node& node, std::map<std::string, std::string>& headers) const {
    const std::string path = "http_server_config";
    ExpectMap(node, path);
    CheckKeys(node, path, {"headers", "http2"});
    // CivetWeb speaks HTTP/1.1 only; exporter-toolkit's http2 switch is accepted and moot.
    if (auto value = node["http2"]) BoolValue(value, path + ".http2");
    auto list = node["headers"];
    if (!list || list.IsNull()) return;
    ExpectMap(list, path + ".headers");
    std::set<std::string> names;
    for (const auto& [name, allowed] : ConfigurableHeaders()) names.insert(name);
    CheckKeys(list, path + ".headers", names);
    size_t total = 0;
    for (const auto& entry : list) {
      std::string name = entry.first.Scalar();
      std::string key_path = path + ".headers." + name;
      std::string value = StringValue(entry.second, key_path);
      if (value.empty()) Fail(entry.second, key_path, "needs a value");
      for (char c : value) {
        if (c == '\r' || c == '\n' || c == '\0') {
          Fail(entry.second, key_path, "header values cannot contain line breaks");
        }
      }
      const std::vector<std::string>& allowed = ConfigurableHeaders().at(name);
      if (!allowed.empty() && std::find(allowed.begin(), allowed.end(), value) == allowed.end()) {
        std::string expected;
        for (const std::string& option : allowed)
          expected += (expected.empty() ? "" : ", ") + option;
        Fail(entry.second, key_path, "expected one of " + expected + ", got '" + value + "'");
      }
      total += name.size() + value.size() + 4;
      if (total > kMaxHeaderBytes) {
        Fail(entry.second, key_path,
             "headers too long (at most " + std::to_string(kMaxHeaderBytes) + " bytes in all)");
      }
      headers[name] = value;
    }
  }

  void ParseUsers(const YAML::Node& node, std::map<std::string, std::string>& users) const {
    const std::string path = "basic_auth_users";
    ExpectMap(node, path);
    std::set<std::string> seen;
    for (const auto& entry : node) {
      if (!entry.first.IsScalar()) Fail(entry.first, path, "user names must be plain strings");
      std::string user = entry.first.Scalar();
      std::string key_path = path + "." + user;
      if (!seen.insert(user).second) Fail(entry.first, key_path, "duplicate user");
      if (user.empty()) Fail(entry.first, path, "user names cannot be empty");
      if (user.find(':') != std::string::npos) {
        Fail(entry.first, key_path, "user names cannot contain ':' (HTTP basic auth splits there)");
      }
      std::string hash = StringValue(entry.second, key_path);
      if (!IsBcryptHash(hash)) {
        Fail(entry.second, key_path,
             "expected a bcrypt hash such as `htpasswd -nBC 10 USER` prints ($2y$10$...)");
      }
      if (int cost = (hash[4] - '0') * 10 + (hash[5] - '0'); cost > kMaxBcryptCost) {
        Fail(entry.second, key_path,
             "bcrypt cost " + std::to_string(cost) + " is above the maximum of " +
                 std::to_string(kMaxBcryptCost) +
                 " (every unauthenticated request pays one check at the highest cost)");
      }
      users[user] = hash;
    }
  }
};

}  // namespace

std::vector<std::string> TlsServerConfig::DefaultCipherSuites() {
  std::vector<std::string> names;
  for (const auto& [go_name, openssl_name] : AllowedCipherSuites()) names.push_back(openssl_name);
  return names;
}

Expected<WebConfigFile> ParseWebConfig(std::string_view yaml_text, const std::string& source_name,
                                       const std::string& base_dir) {
  Parser parser(source_name, base_dir);
  return ParseYamlDocument<WebConfigFile>(parser, yaml_text);
}

Expected<std::string> ReadRegularFile(const std::string& path, size_t max_bytes) {
  int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) return Status::Error(path + ": " + std::strerror(errno));
  struct stat info;
  if (::fstat(fd, &info) != 0 || !S_ISREG(info.st_mode)) {
    ::close(fd);
    return Status::Error(path + ": not a regular file");
  }
  std::string text;
  char buffer[16384];
  while (true) {
    ssize_t n = ::read(fd, buffer, sizeof(buffer));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int error = errno;
      ::close(fd);
      return Status::Error(path + ": " + std::strerror(error));
    }
    if (n == 0) break;
    text.append(buffer, static_cast<size_t>(n));
    if (text.size() > max_bytes) {
      ::close(fd);
      return Status::Error(path + ": larger than " + std::to_string(max_bytes) + " bytes");
    }
  }
  ::close(fd);
  return text;
}

Expected<WebConfigFile> LoadWebConfigFile(const std::string& path) {
  auto text = ReadRegularFile(path);
  if (!text) return text.status();
  size_t slash = path.rfind('/');
  std::string base_dir = slash == std::string::npos ? "." : path.substr(0, slash == 0 ? 1 : slash);
  return ParseWebConfig(*text, path, base_dir);
}

}  // namespace virtcaps
