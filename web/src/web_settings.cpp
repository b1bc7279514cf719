#include "virtcaps/web_settings.h"

#include <sys/stat.h>

#include <utility>

#include "virtcaps/log.h"

namespace virtcaps {

FileStamp StampFile(const std::string& path) {
  FileStamp stamp;
  stamp.path = path;
  struct stat info;
  if (::stat(path.c_str(), &info) != 0) return stamp;
  stamp.exists = true;
  stamp.device = info.st_dev;
  stamp.inode = info.st_ino;
  stamp.size = info.st_size;
  stamp.mtime_ns = static_cast<int64_t>(info.st_mtim.tv_sec) * 1000000000 + info.st_mtim.tv_nsec;
  stamp.ctime_ns = static_cast<int64_t>(info.st_ctim.tv_sec) * 1000000000 + info.st_ctim.tv_nsec;
  return stamp;
}

Expected<std::shared_ptr<const WebSettings>> LoadWebSettings(const std::string& path,
                                                             std::vector<FileStamp>* stamps) {
  auto stamp = [stamps](const std::string& file) {
    if (stamps) stamps->push_back(StampFile(file));
  };
  if (stamps) stamps->clear();
  stamp(path);
  auto config = LoadWebConfigFile(path);
  if (!config) return config.status();
  auto settings = std::make_shared<WebSettings>();
  if (config->tls.enabled) {
    auto tls = TlsCredentials::Load(config->tls, stamp);
    if (!tls) return Status::Error(path + ": " + tls.error());
    settings->tls = *tls;
  }
  for (const auto& [name, value] : config->headers) {
    settings->response_headers += name + ": " + value + "\r\n";
  }
  settings->auth = std::make_unique<BasicAuth>(config->basic_auth_users);
  settings->config = std::move(*config);
  return std::shared_ptr<const WebSettings>(std::move(settings));
}

namespace {

LogFields Describe(const WebSettings& settings) {
  LogFields fields = {
      {"file", settings.config.source},
      {"tls", settings.tls ? "true" : "false"},
      {"basic_auth_users", std::to_string(settings.config.basic_auth_users.size())}};
  if (settings.tls) {
    fields.emplace_back("cert_subject", settings.tls->subject());
    fields.emplace_back("cert_serial", settings.tls->serial());
    fields.emplace_back("cert_not_after", settings.tls->not_after());
  }
  return fields;
}

}  // namespace

WebSettingsWatcher::WebSettingsWatcher(std::string path,
                                       std::shared_ptr<const WebSettings> settings,
                                       std::vector<FileStamp> stamps)
    : path_(std::move(path)), current_(std::move(settings)), stamps_(std::move(stamps)) {}

Expected<std::unique_ptr<WebSettingsWatcher>> WebSettingsWatcher::Open(const std::string& path) {
  std::vector<FileStamp> stamps;
  auto settings = LoadWebSettings(path, &stamps);
  if (!settings) return settings.status();
  LogInfo("web config loaded", Describe(**settings));
  return std::unique_ptr<WebSettingsWatcher>(
      new WebSettingsWatcher(path, std::move(*settings), std::move(stamps)));
}

WebSettingsWatcher::~WebSettingsWatcher() { Stop(); }

std::shared_ptr<const TlsCredentials> WebSettingsWatcher::CurrentTls() const {
  std::shared_ptr<const WebSettings> settings = current_.load();
  return settings ? settings->tls : nullptr;
}

bool WebSettingsWatcher::CheckNow() {
  std::lock_guard<std::mutex> lock(check_mutex_);
  bool changed = false;
  for (const FileStamp& stamp : stamps_) changed = changed || StampFile(stamp.path) != stamp;
  if (!changed) return false;
  // Whatever the outcome, these stamps are the new baseline: a broken file is reported
  // once, and tried again only when a file changes again.
  auto loaded = LoadWebSettings(path_, &stamps_);
  if (loaded) {
    std::shared_ptr<const WebSettings> running = current_.load();
    bool had_tls = running->tls != nullptr;
    if (((*loaded)->tls != nullptr) != had_tls) {
      loaded = Status::Error(path_ + ": tls_server_config was " + (had_tls ? "removed" : "added") +
                             "; switching between HTTP and HTTPS needs a restart");
    } else if (running->auth->enabled() && !(*loaded)->auth->enabled()) {
      // A file cut short or edited by mistake must not open every endpoint to anyone.
      loaded = Status::Error(path_ +
                             ": basic_auth_users was removed; turning basic auth off needs a "
                             "restart");
    }
  }
  if (!loaded) {
    LogError("web config reload failed; keeping the previous settings",
             {{"file", path_}, {"error", loaded.error()}});
    if (on_reload_) on_reload_(false);
    return false;
  }
  current_.store(*loaded);
  LogInfo("web config reloaded", Describe(**loaded));
  if (on_reload_) on_reload_(true);
  return true;
}

void WebSettingsWatcher::Start(std::chrono::milliseconds interval) {
  Stop();
  {
    std::lock_guard<std::mutex> lock(stop_mutex_);
    stopping_ = false;
  }
  thread_ = std::thread([this, interval] {
    std::unique_lock<std::mutex> lock(stop_mutex_);
    while (!stop_signal_.wait_for(lock, interval, [this] { return stopping_; })) {
      lock.unlock();
      CheckNow();
      lock.lock();
    }
  });
}

void WebSettingsWatcher::Stop() {
  {
    std::lock_guard<std::mutex> lock(stop_mutex_);
    stopping_ = true;
  }
  stop_signal_.notify_all();
  if (thread_.joinable()) thread_.join();
}

}  // namespace virtcaps
