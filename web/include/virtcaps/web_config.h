// --web.config.file: TLS, response headers and basic auth in the format of the
// Prometheus exporter-toolkit, so a node_exporter web config works unchanged:
//
//   tls_server_config:
//     cert_file: server.crt            # relative paths resolve against this file's directory
//     key_file: server.key
//     client_auth_type: RequireAndVerifyClientCert
//     client_ca_file: clients-ca.crt
//     min_version: TLS13
//     cipher_suites: [TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384]   # TLS 1.2 only
//   http_server_config:
//     headers: {Strict-Transport-Security: max-age=31536000}
//   basic_auth_users:
//     prometheus: $2y$10$...            # bcrypt, as `htpasswd -nBC 10 prometheus` prints
//
// bcrypt costs above kMaxBcryptCost are refused: every request without cached
// credentials pays one check at the highest configured cost, and cost 31 takes minutes.
// bcrypt reads at most 72 bytes of a password; longer passwords are cut there.
//
// Unknown keys are errors ("file:line:column: key.path: message"), as in --config.file.
// This is the parsed file only; the certificates are read by LoadWebSettings.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "virtcaps/status.h"

namespace virtcaps {

struct TlsServerConfig {
  // exporter-toolkit's names, which are Go's tls.ClientAuthType.
  enum class ClientAuth {
    kNoClientCert,                // never ask for a client certificate
    kRequestClientCert,           // ask; accept any or none, unverified
    kRequireAnyClientCert,        // require one, but do not verify it
    kVerifyClientCertIfGiven,     // optional; when sent, it must verify against client_ca_file
    kRequireAndVerifyClientCert,  // required, and it must verify against client_ca_file
  };
  enum class Version { kTls12, kTls13 };

  bool enabled = false;   // any key under tls_server_config: serve HTTPS only
  std::string cert_file;  // PEM: the server certificate, then any intermediates
  std::string key_file;   // PEM: its unencrypted private key
  ClientAuth client_auth = ClientAuth::kNoClientCert;
  std::string client_ca_file;  // PEM: CAs that client certificates must chain to
  Version min_version = Version::kTls12;
  // TLS 1.2 cipher suites, as OpenSSL names them (the file uses Go's names, as
  // exporter-toolkit). Only ECDHE key exchange with AEAD ciphers can be chosen:
  // static-RSA and CBC suites are never offered. TLS 1.3 suites are all AEAD.
  std::vector<std::string> cipher_suites = DefaultCipherSuites();
  static std::vector<std::string> DefaultCipherSuites();
};

inline constexpr int kMaxBcryptCost = 12;  // about 0.25 s per check on the machines here

struct WebConfigFile {
  std::string source;  // the file's path (or a name, for text parsed directly)
  TlsServerConfig tls;
  // http_server_config.headers: added to every response. exporter-toolkit allows only
  // these security headers (and for two of them only these values), and so do we.
  std::map<std::string, std::string> headers;
  // basic_auth_users: user name -> bcrypt hash ($2y$, $2b$ or $2a$). Non-empty means
  // every request on every path needs one of these users.
  std::map<std::string, std::string> basic_auth_users;
};

// Parses web config YAML. Relative file paths resolve against base_dir.
Expected<WebConfigFile> ParseWebConfig(std::string_view yaml_text, const std::string& source_name,
                                       const std::string& base_dir);
// Reads a file the web config names (or the web config itself), at most `max_bytes`.
// Opened without blocking and refused unless it is a regular file: a FIFO or a device
// planted in its place must not hang the thread that reads it.
Expected<std::string> ReadRegularFile(const std::string& path, size_t max_bytes = 1u << 20);
// Reads and parses a web config file.
Expected<WebConfigFile> LoadWebConfigFile(const std::string& path);

}  // namespace virtcaps
