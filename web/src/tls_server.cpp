// The agent's side of TLS: reads the configured files and hands them to the TLS module
// (tls_module.h), which it loads on first use.
#include "virtcaps/tls_server.h"

#include <dlfcn.h>

#include "virtcaps/digest.h"
#include "virtcaps/tls_module.h"

namespace virtcaps {

namespace {

struct LoadedModule {
  const TlsModule* module = nullptr;
  std::string error;  // why it could not be loaded
};

// Loaded once and never unloaded: credentials and the SSL_CTX callback live in it.
const LoadedModule& TlsModuleOnce() {
  static const LoadedModule loaded = [] {
    LoadedModule result;
    // A bare name: dlopen searches the RUNPATH of the object that calls it, the agent's
    // (lib/virtcaps when installed, the build tree's shim directory otherwise).
    void* handle = dlopen(kTlsModuleFile, RTLD_NOW | RTLD_LOCAL);
    if (handle == nullptr) {
      const char* why = dlerror();
      result.error = std::string("cannot load the TLS module ") + kTlsModuleFile + " (" +
                     (why ? why : "unknown error") +
                     "); it belongs in the agent's RUNPATH, e.g. /usr/lib/virtcaps";
      return result;
    }
    auto entry = reinterpret_cast<TlsModuleEntry>(dlsym(handle, kTlsModuleEntry));
    result.module = entry != nullptr ? entry() : nullptr;
    if (result.module == nullptr) {
      result.error = std::string("the TLS module ") + kTlsModuleFile + " has no " + kTlsModuleEntry;
    }
    return result;
  }();
  return loaded;
}

Expected<const TlsModule*> Module() {
  const LoadedModule& loaded = TlsModuleOnce();
  if (loaded.module == nullptr) return Status::Error(loaded.error);
  return loaded.module;
}

}  // namespace

Expected<std::shared_ptr<const TlsCredentials>> TlsCredentials::Load(
    const TlsServerConfig& config, const std::function<void(const std::string&)>& before_read) {
  auto read = [&](const std::string& path) {
    if (before_read) before_read(path);
    return ReadRegularFile(path);
  };
  TlsPemTexts texts;
  auto cert = read(config.cert_file);
  if (!cert) return Status::Error("tls_server_config.cert_file: " + cert.error());
  texts.cert = std::move(*cert);
  auto key = read(config.key_file);
  if (!key) return Status::Error("tls_server_config.key_file: " + key.error());
  texts.key = std::move(*key);
  if (!config.client_ca_file.empty()) {
    auto ca = read(config.client_ca_file);
    if (!ca) return Status::Error("tls_server_config.client_ca_file: " + ca.error());
    texts.client_ca = std::move(*ca);
  }
  auto module = Module();
  if (!module) {
    SecureZero(texts.key.data(), texts.key.size());
    return module.status();
  }
  std::string error;
  std::shared_ptr<const TlsCredentials> made = (*module)->MakeCredentials(config, texts, error);
  SecureZero(texts.key.data(), texts.key.size());  // the module wiped its parse; this is ours
  if (!made) return Status::Error(error);
  return made;
}

Status ConfigureServerContext(void* ssl_ctx, const TlsCredentialProvider* provider) {
  auto module = Module();
  if (!module) return module.status();
  std::string error =
      (*module)->ConfigureServerContext(ssl_ctx, provider, TlsServerConfig::DefaultCipherSuites());
  return error.empty() ? Status() : Status::Error(error);
}

Status CheckCivetwebTlsLookup() {
  auto module = Module();
  if (!module) return module.status();
  std::string error = (*module)->CheckCivetwebLookup();
  return error.empty() ? Status() : Status::Error(error);
}

}  // namespace virtcaps
