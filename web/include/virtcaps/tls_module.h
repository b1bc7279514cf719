// The boundary between the agent and its TLS module (libvirtcaps-tls.so), the only
// part of the agent that links OpenSSL. An agent serving plain HTTP never loads it, so
// it never maps libssl and libcrypto (about 1.7 MB of resident pages for their
// relocations and tables); the first TLS configuration dlopens it from the agent's
// RUNPATH, next to the TLS shims it depends on.
//
// Both sides are built from this tree by the same compiler: the interface is C++
// (std::string, std::shared_ptr), and the only C symbol is the entry point.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "virtcaps/tls_server.h"

namespace virtcaps {

// What the agent read for one tls_server_config: the files' texts, and the names to
// put in messages. The module wipes the key text once it has parsed it.
struct TlsPemTexts {
  std::string cert;
  std::string key;
  std::string client_ca;  // empty when no client_ca_file is configured
};

class TlsModule {
 public:
  // The certificate chain, key and client CAs parsed and checked; null with `error`
  // set (naming the config key and file) when they do not make credentials.
  virtual std::shared_ptr<const TlsCredentials> MakeCredentials(const TlsServerConfig& config,
                                                                TlsPemTexts& texts,
                                                                std::string& error) const = 0;
  // ConfigureServerContext's work (tls_server.h), with the TLS 1.2 suites to offer
  // before a handshake applies the configured ones. Empty on success, else the error.
  virtual std::string ConfigureServerContext(
      void* ssl_ctx, const TlsCredentialProvider* provider,
      const std::vector<std::string>& default_cipher_suites) const = 0;
  // Whether CivetWeb's dlopen("libssl.so") finds SSL_get_peer_certificate: empty if so.
  virtual std::string CheckCivetwebLookup() const = 0;

 protected:
  ~TlsModule() = default;  // a static object in the module, never deleted through this
};

// The module's file name (found through the agent's RUNPATH) and its entry point, an
// extern "C" function returning its TlsModule.
inline constexpr const char* kTlsModuleFile = "libvirtcaps-tls.so";
inline constexpr const char* kTlsModuleEntry = "virtcaps_tls_module_v1";
using TlsModuleEntry = const TlsModule* (*)();

}  // namespace virtcaps
