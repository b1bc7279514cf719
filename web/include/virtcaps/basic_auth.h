// HTTP basic auth against bcrypt hashes (web config basic_auth_users), as
// exporter-toolkit does it: every path needs a configured user; unknown users cost a
// bcrypt check too, so timing does not tell which users exist; verified credentials
// are remembered so a scrape every few seconds does not pay bcrypt every time.
#pragma once

#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_set>

struct crypt_data;

namespace virtcaps {

class BasicAuth {
 public:
  // What a 401 carries.
  static constexpr std::string_view kChallenge = "Basic realm=\"virtcaps\"";
  // Verified credentials remembered at most; the oldest are forgotten first.
  static constexpr size_t kCacheCapacity = 256;

  // users: name -> bcrypt hash. Computes the dummy hash for unknown users (one bcrypt).
  explicit BasicAuth(std::map<std::string, std::string> users);
  ~BasicAuth();
  BasicAuth(const BasicAuth&) = delete;
  BasicAuth& operator=(const BasicAuth&) = delete;

  // False when no users are configured: then every request is allowed.
  bool enabled() const { return !users_.empty(); }
  // `authorization` is the Authorization header (null when absent). True when auth is
  // off, or the header carries a configured user and that user's password.
  bool Allows(const char* authorization) const;
  // True when `user` is configured and `password` matches its hash.
  bool Verify(std::string_view user, std::string_view password) const;
  size_t CachedCredentials() const;

 private:
  bool CheckHash(std::string_view password, const std::string& hash) const;

  std::map<std::string, std::string> users_;
  std::string dummy_hash_;  // bcrypt of nothing anyone knows, at the users' highest cost
  // bcrypt is CPU-bound on purpose: one check at a time, so a flood of bad passwords
  // takes one core rather than every worker's.
  mutable std::mutex crypt_mutex_;
  std::unique_ptr<struct crypt_data> crypt_data_;
  // SHA-256 of (user, password, stored hash) for each verified credential.
  mutable std::mutex cache_mutex_;
  mutable std::unordered_set<std::string> cache_;
  mutable std::deque<std::string> cache_order_;
};

// "user:password" from an Authorization header value "Basic <base64>"; nullopt when
// the header is not well-formed basic auth.
std::optional<std::pair<std::string, std::string>> ParseBasicAuthorization(std::string_view header);

}  // namespace virtcaps
