#include "virtcaps/basic_auth.h"

#include <crypt.h>

#include <algorithm>
#include <cstring>
#include <utility>

#include "virtcaps/digest.h"
#include "virtcaps/strings.h"

namespace virtcaps {

namespace {

int Base64Value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

// Standard base64 with padding (RFC 4648 section 4), as browsers and curl send it.
std::optional<std::string> DecodeBase64(std::string_view text) {
  if (text.size() % 4 != 0) return std::nullopt;
  std::string out;
  out.reserve(text.size() / 4 * 3);
  for (size_t i = 0; i < text.size(); i += 4) {
    int values[4];
    int padding = 0;
    for (int j = 0; j < 4; ++j) {
      char c = text[i + static_cast<size_t>(j)];
      bool last_group = i + 4 == text.size();
      if (c == '=' && last_group && j >= 2) {
        ++padding;
        values[j] = 0;
        continue;
      }
      if (padding > 0) return std::nullopt;  // data after '='
      values[j] = Base64Value(c);
      if (values[j] < 0) return std::nullopt;
    }
    uint32_t group =
        static_cast<uint32_t>(values[0] << 18 | values[1] << 12 | values[2] << 6 | values[3]);
    out += static_cast<char>(group >> 16 & 0xff);
    if (padding < 2) out += static_cast<char>(group >> 8 & 0xff);
    if (padding < 1) out += static_cast<char>(group & 0xff);
  }
  return out;
}

// The cost field of a bcrypt hash or salt ("$2y$10$..." -> 10); the hashes were
// checked when the web config was parsed.
int BcryptCost(const std::string& hash) {
  return hash.size() > 6 ? (hash[4] - '0') * 10 + (hash[5] - '0') : 4;
}

void AppendField(std::string& out, std::string_view field) {
  uint64_t size = field.size();
  out.append(reinterpret_cast<const char*>(&size), sizeof(size));
  out.append(field);
}

// The cache never holds a password, only this digest of the credential.
std::string CacheKey(std::string_view user, std::string_view password, const std::string& hash) {
  std::string input;
  AppendField(input, user);
  AppendField(input, password);
  AppendField(input, hash);
  auto digest = Sha256(input);
  SecureZero(input.data(), input.size());
  std::string key(reinterpret_cast<const char*>(digest.data()), digest.size());
  SecureZero(digest.data(), digest.size());
  return key;
}

}  // namespace

std::optional<std::pair<std::string, std::string>> ParseBasicAuthorization(
    std::string_view header) {
  header = Trim(header);
  size_t space = header.find(' ');
  if (space == std::string_view::npos || ToLower(header.substr(0, space)) != "basic") {
    return std::nullopt;
  }
  auto decoded = DecodeBase64(Trim(header.substr(space + 1)));
  if (!decoded) return std::nullopt;
  size_t colon = decoded->find(':');
  if (colon == std::string::npos) return std::nullopt;
  return std::make_pair(decoded->substr(0, colon), decoded->substr(colon + 1));
}

BasicAuth::BasicAuth(std::map<std::string, std::string> users) : users_(std::move(users)) {
  for (const auto& [user, hash] : users_) max_cost_ = std::max(max_cost_, BcryptCost(hash));
  for (int cost = 4; cost <= max_cost_; ++cost) {
    char salt[CRYPT_GENSALT_OUTPUT_SIZE];
    if (crypt_gensalt_rn("$2b$", static_cast<unsigned long>(cost), nullptr, 0, salt,
                         sizeof(salt)) == nullptr) {
      // No salt from libxcrypt: a fixed one at this cost does the same work.
      std::string fixed = (cost < 10 ? "$2b$0" : "$2b$") + std::to_string(cost) + "$";
      padding_salts_.push_back(fixed + "virtcapsvirtcapsvirtca");
    } else {
      padding_salts_.push_back(salt);
    }
  }
}

BasicAuth::~BasicAuth() = default;

bool BasicAuth::Allows(const char* authorization) const {
  if (users_.empty()) return true;
  if (authorization == nullptr) return false;
  auto credentials = ParseBasicAuthorization(authorization);
  if (!credentials) return false;
  bool allowed = Verify(credentials->first, credentials->second);
  SecureZero(credentials->second.data(), credentials->second.size());
  return allowed;
}

bool BasicAuth::CheckHash(std::string_view password, const std::string& hash) const {
  // Bounded: a flood of wrong passwords takes kConcurrentChecks cores, not every
  // worker's, and a check that waits too long fails rather than queueing.
  if (!slots_.try_acquire_for(kSlotWait)) return false;
  std::string phrase(password);                       // crypt wants a NUL-terminated string
  auto data = std::make_unique<struct crypt_data>();  // ~32 KiB: only on cache misses
  const char* result = crypt_r(phrase.c_str(), hash.c_str(), data.get());
  SecureZero(phrase.data(), phrase.size());
  bool match = result != nullptr && std::strlen(result) == hash.size() &&
               ConstantTimeEqual(result, hash.data(), hash.size());
  SecureZero(data.get(), sizeof(struct crypt_data));
  slots_.release();
  work_done_ += WorkOf(BcryptCost(hash));
  return match;
}

bool BasicAuth::Verify(std::string_view user, std::string_view password) const {
  auto found = users_.find(std::string(user));
  bool known = found != users_.end();
  std::string key = known ? CacheKey(user, password, found->second) : std::string();
  if (known) {
    std::lock_guard<std::mutex> lock(cache_mutex_);
    if (cache_.count(key)) return true;
  }
  // Every uncached check does the work of one bcrypt at the highest configured cost,
  // so its time tells neither whether the user exists nor which cost its hash has.
  auto pad = [&](int cost) { CheckHash(password, padding_salts_[static_cast<size_t>(cost - 4)]); };
  bool match = false;
  if (known) {
    // A NUL in the password would cut it short for crypt(3): such a password never matches.
    match = CheckHash(password, found->second) && password.find('\0') == std::string_view::npos;
    // 2^c + (2^c + 2^(c+1) + ... + 2^(max-1)) = 2^max
    for (int cost = BcryptCost(found->second); cost < max_cost_; ++cost) pad(cost);
  } else {
    pad(max_cost_);
  }
  if (!match) return false;
  {  // a match is a known user: its key is made
    std::lock_guard<std::mutex> lock(cache_mutex_);
    if (cache_.insert(key).second) {
      cache_order_.push_back(key);
      if (cache_order_.size() > kCacheCapacity) {
        cache_.erase(cache_order_.front());
        cache_order_.pop_front();
      }
    }
  }
  return true;
}

size_t BasicAuth::CachedCredentials() const {
  std::lock_guard<std::mutex> lock(cache_mutex_);
  return cache_.size();
}

}  // namespace virtcaps
