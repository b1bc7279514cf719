// HTTPS for the agent's CivetWeb server, done with OpenSSL 3 directly: CivetWeb creates
// the SSL_CTX and runs the connections; we fill the context from its init_ssl callback
// and pick the certificate, the client-certificate policy and the minimum version on
// every handshake, so a re-read web config takes effect on the next connection.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <utility>

#include "virtcaps/status.h"
#include "virtcaps/web_config.h"

namespace virtcaps {

// The certificate, key, client CAs and policy of one tls_server_config, read and
// checked (the key must match the certificate). Immutable; shared by handshakes. Made
// by the TLS module (tls_module.h), which holds the OpenSSL objects behind ApplyTo.
class TlsCredentials {
 public:
  // Reads cert_file, key_file and client_ca_file and has the TLS module parse them
  // (loading it, and OpenSSL with it, on first use). `before_read` is called with each
  // path just before it is read (the reload watcher records the files' stamps).
  static Expected<std::shared_ptr<const TlsCredentials>> Load(
      const TlsServerConfig& config,
      const std::function<void(const std::string&)>& before_read = {});
  virtual ~TlsCredentials() = default;
  TlsCredentials(const TlsCredentials&) = delete;
  TlsCredentials& operator=(const TlsCredentials&) = delete;

  // The served certificate, for logs: subject, serial (hex), expiry, SHA-256.
  const std::string& subject() const { return subject_; }
  const std::string& serial() const { return serial_; }
  const std::string& not_after() const { return not_after_; }
  const std::string& sha256_fingerprint() const { return fingerprint_; }

  // Applies these credentials to one connection (an OpenSSL SSL*) during its ClientHello.
  virtual bool ApplyTo(void* ssl) const = 0;

 protected:
  TlsCredentials(std::string subject, std::string serial, std::string not_after,
                 std::string fingerprint)
      : subject_(std::move(subject)),
        serial_(std::move(serial)),
        not_after_(std::move(not_after)),
        fingerprint_(std::move(fingerprint)) {}

 private:
  std::string subject_, serial_, not_after_, fingerprint_;
};

// Where handshakes get the current credentials. Must outlive the CivetWeb server.
class TlsCredentialProvider {
 public:
  virtual ~TlsCredentialProvider() = default;
  virtual std::shared_ptr<const TlsCredentials> CurrentTls() const = 0;
};

// Called from CivetWeb's init_ssl callback with its SSL_CTX: sets the defaults (TLS 1.2
// or later, no session resumption) and the per-handshake hook that applies
// provider->CurrentTls().
Status ConfigureServerContext(void* ssl_ctx, const TlsCredentialProvider* provider);

// CivetWeb 1.15 looks OpenSSL up with dlopen("libssl.so") and crashes on the first
// HTTPS connection when SSL_get_peer_certificate is missing (OpenSSL 3). Loads the TLS
// module (and with it the shim) and checks that the lookup finds the symbol, i.e. that
// the TLS shim is the loaded "libssl.so".
Status CheckCivetwebTlsLookup();

}  // namespace virtcaps
