// HTTP basic auth against bcrypt hashes (web config basic_auth_users), as
// exporter-toolkit does it: every path needs a configured user; every check costs the
// same bcrypt work whoever the user is (so timing does not tell which users exist);
// verified credentials are remembered so a scrape every few seconds does not pay
// bcrypt every time, and only a few bcrypt checks run at once.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <semaphore>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

namespace virtcaps {

class BasicAuth {
 public:
  // What a 401 carries.
  static constexpr std::string_view kChallenge = "Basic realm=\"virtcaps\"";
  // Verified credentials remembered at most; the oldest are forgotten first.
  static constexpr size_t kCacheCapacity = 256;
  // bcrypt checks that run at once. More would only share the same cores; fewer keep
  // a flood of wrong passwords from taking every core, and a check that finds no slot
  // within kSlotWait is refused (401) rather than holding its worker longer.
  static constexpr int kConcurrentChecks = 2;
  static constexpr std::chrono::milliseconds kSlotWait{2000};

  // users: name -> bcrypt hash (costs already checked by the web config parser).
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
  // The bcrypt work of one uncached check, in units of one cost-4 round (2^cost / 16):
  // the same for every user name, known or not.
  uint64_t WorkPerCheck() const { return WorkOf(max_cost_); }
  // bcrypt work done so far (in the units above), for tests and benchmarks.
  uint64_t WorkDone() const { return work_done_.load(); }

 private:
  static uint64_t WorkOf(int cost) { return uint64_t{1} << (cost - 4); }
  // One bcrypt of `password` against `hash`; true when it matches. Waits for a slot.
  bool CheckHash(std::string_view password, const std::string& hash) const;

  std::map<std::string, std::string> users_;
  int max_cost_ = 4;  // the highest cost among the users' hashes
  // Salts (no hash) at every cost from 4 to max_cost_: checks against them cost
  // exactly that work and never match. Unknown users run the max_cost_ one; a
  // known user of cost c < max_cost_ also runs those of costs c..max_cost_-1,
  // since 2^c + 2^c + 2^(c+1) + ... + 2^(max-1) = 2^max.
  std::vector<std::string> padding_salts_;
  mutable std::counting_semaphore<kConcurrentChecks> slots_{kConcurrentChecks};
  mutable std::atomic<uint64_t> work_done_{0};
  // SHA-256 of (user, password, stored hash) for each verified credential.
  mutable std::mutex cache_mutex_;
  mutable std::unordered_set<std::string> cache_;
  mutable std::deque<std::string> cache_order_;
};

// "user:password" from an Authorization header value "Basic <base64>"; nullopt when
// the header is not well-formed basic auth.
std::optional<std::pair<std::string, std::string>> ParseBasicAuthorization(std::string_view header);

}  // namespace virtcaps
