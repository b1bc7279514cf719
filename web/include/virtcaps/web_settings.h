// The live settings of --web.config.file: what a request (auth, headers) and a TLS
// handshake (certificates) need, re-read when the file or a file it names changes, so
// certificates rotate without a restart. A broken new file keeps the last good settings.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "virtcaps/basic_auth.h"
#include "virtcaps/status.h"
#include "virtcaps/tls_server.h"
#include "virtcaps/web_config.h"

namespace virtcaps {

// What identifies a version of a file: a rename over it, a rewrite or its removal
// changes the stamp.
struct FileStamp {
  std::string path;
  bool exists = false;
  dev_t device = 0;
  ino_t inode = 0;
  off_t size = 0;
  int64_t mtime_ns = 0;
  int64_t ctime_ns = 0;
  bool operator==(const FileStamp&) const = default;
};
FileStamp StampFile(const std::string& path);

struct WebSettings {
  WebConfigFile config;
  std::string response_headers;               // "Name: value\r\n" per configured header
  std::unique_ptr<BasicAuth> auth;            // never null; allows everything without users
  std::shared_ptr<const TlsCredentials> tls;  // null: plain HTTP
};

// Reads the web config file and every file it names. `stamps` (optional) receives each
// file's stamp taken just before it was read, also when loading fails part way.
Expected<std::shared_ptr<const WebSettings>> LoadWebSettings(
    const std::string& path, std::vector<FileStamp>* stamps = nullptr);

class WebSettingsWatcher : public TlsCredentialProvider {
 public:
  // Loads the file; its errors are the caller's to report.
  static Expected<std::unique_ptr<WebSettingsWatcher>> Open(const std::string& path);
  ~WebSettingsWatcher() override;

  const std::string& path() const { return path_; }
  std::shared_ptr<const WebSettings> Current() const { return current_.load(); }
  std::shared_ptr<const TlsCredentials> CurrentTls() const override;

  // Re-reads the files if any changed since the last look. A failure is logged once
  // per change of the files and leaves the current settings in place. Returns true
  // when new settings were swapped in.
  bool CheckNow();
  // Called with the outcome of every re-read that CheckNow attempts (set before Start).
  void OnReload(std::function<void(bool ok)> callback) { on_reload_ = std::move(callback); }
  // Calls CheckNow every `interval` on a background thread until Stop.
  void Start(std::chrono::milliseconds interval = std::chrono::seconds(1));
  void Stop();

 private:
  WebSettingsWatcher(std::string path, std::shared_ptr<const WebSettings> settings,
                     std::vector<FileStamp> stamps);

  const std::string path_;
  std::atomic<std::shared_ptr<const WebSettings>> current_;
  std::mutex check_mutex_;
  std::vector<FileStamp> stamps_;  // of the last load, good or bad (under check_mutex_)
  std::function<void(bool ok)> on_reload_;

  std::mutex stop_mutex_;
  std::condition_variable stop_signal_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace virtcaps
