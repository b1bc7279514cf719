// The agent's side of TLS: reads the configured files and hands them to the TLS module
// (tls_module.h), which it loads on first use.
#include "virtcaps/tls_server.h"

#include <dlfcn.h>
#include <unistd.h>

#include <cstddef>
#include <vector>

#include "virtcaps/digest.h"
#include "virtcaps/tls_module.h"

namespace virtcaps {

namespace {

struct LoadedModule {
  const TlsModule* module = nullptr;
  std::string error;  // why it could not be loaded
};

// Where the loader would look for a library the agent needs: its RUNPATH ($ORIGIN
// expanded; dropped in secure mode, as the loader does), LD_LIBRARY_PATH and the system
// directories, from dlinfo. Asked for explicitly because a dlopen of a bare name
// searches the RUNPATH of its caller, and under a sanitizer that is the sanitizer's
// runtime (which intercepts dlopen), not the agent.
std::vector<std::string> LibrarySearchPath() {
  std::vector<std::string> dirs;
  void* self = dlopen(nullptr, RTLD_LAZY);
  if (self == nullptr) return dirs;
  Dl_serinfo size;
  if (dlinfo(self, RTLD_DI_SERINFOSIZE, &size) == 0 && size.dls_size >= sizeof(Dl_serinfo)) {
    std::vector<std::max_align_t> buffer(size.dls_size / sizeof(std::max_align_t) + 1);
    auto* info = reinterpret_cast<Dl_serinfo*>(buffer.data());
    info->dls_size = size.dls_size;
    info->dls_cnt = size.dls_cnt;
    if (dlinfo(self, RTLD_DI_SERINFO, info) == 0) {
      for (unsigned i = 0; i < info->dls_cnt; ++i) dirs.emplace_back(info->dls_serpath[i].dls_name);
    }
  }
  dlclose(self);
  return dirs;
}

// Loaded once and never unloaded: credentials and the SSL_CTX callback live in it.
const LoadedModule& TlsModuleOnce() {
  static const LoadedModule loaded = [] {
    LoadedModule result;
    // The first directory on the search path that has it, as the loader would pick;
    // else the bare name, for the loader's cache (the container image's secure mode).
    std::string file = kTlsModuleFile;
    for (const std::string& dir : LibrarySearchPath()) {
      std::string candidate = dir + "/" + kTlsModuleFile;
      if (::access(candidate.c_str(), F_OK) == 0) {
        file = candidate;
        break;
      }
    }
    void* handle = dlopen(file.c_str(), RTLD_NOW | RTLD_LOCAL);
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
      result.error = std::string("the TLS module ") + file + " has no " + kTlsModuleEntry;
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
