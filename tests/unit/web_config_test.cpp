// --web.config.file parsing (exporter-toolkit's format) and basic auth.
#include "virtcaps/web_config.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "test_support.h"
#include "virtcaps/basic_auth.h"

namespace virtcaps {
namespace {

// bcrypt at cost 4 (fast tests); `$2y$` is what htpasswd writes, `$2b$` what crypt(3) does.
constexpr const char* kPrometheusHash =  // "right horse"
    "$2y$04$MVcwLv8IuAYEtZawpnYX3..VO5/YsMd.FTmTyUITfpZKOJY8GUbUa";
constexpr const char* kGrafanaHash =  // "battery staple"
    "$2b$04$dTq4HfC5vWTaJlRssLr7Q./zVR.ZR4meC.jUKhcnkdd4dt.3Hgc66";

using Users = std::map<std::string, std::string>;

Expected<WebConfigFile> Parse(const std::string& yaml) {
  return ParseWebConfig(yaml, "web.yml", "/etc/virtcaps");
}

std::string ParseError(const std::string& yaml) {
  auto config = Parse(yaml);
  EXPECT_FALSE(config) << "accepted:\n" << yaml;
  return config ? "" : config.error();
}

TEST(WebConfigTest, ParsesEverySection) {
  auto config = Parse(std::string("tls_server_config:\n"
                                  "  cert_file: tls/server.crt\n"
                                  "  key_file: /secrets/server.key\n"
                                  "  client_auth_type: RequireAndVerifyClientCert\n"
                                  "  client_ca_file: clients.pem\n"
                                  "  min_version: TLS13\n"
                                  "http_server_config:\n"
                                  "  headers:\n"
                                  "    X-Frame-Options: deny\n"
                                  "    Strict-Transport-Security: max-age=31536000\n"
                                  "basic_auth_users:\n"
                                  "  prometheus: ") +
                      kPrometheusHash + "\n  grafana: '" + kGrafanaHash + "'\n");
  ASSERT_TRUE(config) << config.error();
  EXPECT_EQ(config->source, "web.yml");
  EXPECT_TRUE(config->tls.enabled);
  // Relative paths resolve against the web config file's directory.
  EXPECT_EQ(config->tls.cert_file, "/etc/virtcaps/tls/server.crt");
  EXPECT_EQ(config->tls.key_file, "/secrets/server.key");
  EXPECT_EQ(config->tls.client_ca_file, "/etc/virtcaps/clients.pem");
  EXPECT_EQ(config->tls.client_auth, TlsServerConfig::ClientAuth::kRequireAndVerifyClientCert);
  EXPECT_EQ(config->tls.min_version, TlsServerConfig::Version::kTls13);
  EXPECT_EQ(config->headers.at("X-Frame-Options"), "deny");
  EXPECT_EQ(config->headers.at("Strict-Transport-Security"), "max-age=31536000");
  EXPECT_EQ(config->basic_auth_users.at("prometheus"), kPrometheusHash);
  EXPECT_EQ(config->basic_auth_users.at("grafana"), kGrafanaHash);
}

TEST(WebConfigTest, EmptySectionsMeanNoHeaders) {
  auto config = Parse("http_server_config:\n  headers:\n");
  ASSERT_TRUE(config) << config.error();
  EXPECT_FALSE(config->tls.enabled);
  EXPECT_TRUE(config->headers.empty());
  EXPECT_TRUE(config->basic_auth_users.empty());
  auto defaults = Parse("tls_server_config:\n  cert_file: a.pem\n  key_file: a.key\n");
  ASSERT_TRUE(defaults) << defaults.error();
  EXPECT_EQ(defaults->tls.client_auth, TlsServerConfig::ClientAuth::kNoClientCert);
  EXPECT_EQ(defaults->tls.cipher_suites, TlsServerConfig::DefaultCipherSuites());
}

// A file cut short (or emptied) must never switch TLS or auth off (issue 15.3, 15.9).
TEST(WebConfigTest, EmptyOrTruncatedFilesAreErrorsNotPlainHttp) {
  EXPECT_EQ(ParseError(""),
            "web.yml: the web config is empty (leave out --web.config.file to serve plain HTTP)");
  EXPECT_EQ(ParseError("# only a comment\n"),
            "web.yml: the web config is empty (leave out --web.config.file to serve plain HTTP)");
  EXPECT_EQ(ParseError("basic_auth_users:\n"),
            "web.yml:2:1: basic_auth_users: needs at least one user");
  EXPECT_EQ(ParseError("basic_auth_users: {}\n"),
            "web.yml:1:19: basic_auth_users: needs at least one user");
  EXPECT_EQ(ParseError("tls_server_config: {}\n"),
            "web.yml:1:20: tls_server_config.cert_file: required to serve HTTPS");
  EXPECT_EQ(ParseError("tls_server_config:\n"),
            "web.yml:2:1: tls_server_config: empty: needs cert_file and key_file (leave the key "
            "out to serve plain HTTP)");
}

TEST(WebConfigTest, BcryptCostsAboveTheCapAreRefused) {
  // A $2y$31$ hash would take minutes per check: refused, with the cap in the message.
  std::string hash31 = "$2y$31$" + std::string(kPrometheusHash).substr(7);
  EXPECT_EQ(ParseError("basic_auth_users:\n  slow: " + hash31 + "\n"),
            "web.yml:2:9: basic_auth_users.slow: bcrypt cost 31 is above the maximum of 12 (every "
            "unauthenticated request pays one check at the highest cost)");
  std::string hash12 = "$2y$12$" + std::string(kPrometheusHash).substr(7);
  EXPECT_TRUE(Parse("basic_auth_users:\n  ok: " + hash12 + "\n"));
}

TEST(WebConfigTest, CipherSuitesAreGoNamesOfEcdheAeadSuitesOnly) {
  std::string base = "tls_server_config:\n  cert_file: a.pem\n  key_file: a.key\n";
  auto config = Parse(base +
                      "  cipher_suites: [TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384, "
                      "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256]\n");
  ASSERT_TRUE(config) << config.error();
  EXPECT_EQ(config->tls.cipher_suites, (std::vector<std::string>{"ECDHE-RSA-AES256-GCM-SHA384",
                                                                 "ECDHE-ECDSA-CHACHA20-POLY1305"}));
  std::string error = ParseError(base + "  cipher_suites: [TLS_RSA_WITH_AES_128_CBC_SHA]\n");
  EXPECT_EQ(
      error.rfind("web.yml:4:19: tls_server_config.cipher_suites[0]: "
                  "'TLS_RSA_WITH_AES_128_CBC_SHA' is not offered (only ECDHE key exchange "
                  "with AEAD ciphers): expected one of TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
                  0),
      0u)
      << error;
  EXPECT_EQ(ParseError(base + "  cipher_suites: []\n"),
            "web.yml:4:18: tls_server_config.cipher_suites: needs at least one suite");
}

TEST(WebConfigTest, UnknownKeysNameFileLineColumnAndKeyPath) {
  EXPECT_EQ(ParseError("basic_auth_users: {}\ntls_config:\n  cert_file: x\n"),
            "web.yml:2:1: tls_config: unknown key (expected one of: basic_auth_users, "
            "http_server_config, tls_server_config)");
  EXPECT_EQ(ParseError("tls_server_config:\n  cert_file: a.pem\n  keyfile: a.key\n"),
            "web.yml:3:3: tls_server_config.keyfile: unknown key (expected one of: cert_file, "
            "cipher_suites, client_auth_type, client_ca_file, key_file, min_version, "
            "prefer_server_cipher_suites)");
  EXPECT_EQ(ParseError("http_server_config:\n  header:\n    X-Frame-Options: deny\n"),
            "web.yml:2:3: http_server_config.header: unknown key (expected one of: headers, "
            "http2)");
}

TEST(WebConfigTest, RefusesExporterToolkitSettingsItDoesNotImplement) {
  EXPECT_EQ(ParseError("tls_server_config:\n  cert_file: a.pem\n  key_file: a.key\n"
                       "  curve_preferences: [X25519]\n"),
            "web.yml:4:3: tls_server_config.curve_preferences: exporter-toolkit setting not "
            "supported by virtcaps-agent");
  EXPECT_NE(ParseError("rate_limit:\n  burst: 1\n").find("rate_limit: exporter-toolkit setting"),
            std::string::npos);
  // Settings that cannot matter here are accepted: HTTP/2 (CivetWeb has none) and the
  // cipher preference.
  auto moot = Parse(
      "tls_server_config:\n  cert_file: a.pem\n  key_file: a.key\n"
      "  prefer_server_cipher_suites: true\nhttp_server_config:\n  http2: false\n");
  EXPECT_TRUE(moot) << moot.error();
}

TEST(WebConfigTest, ChecksTlsSettings) {
  const std::string base = "tls_server_config:\n  cert_file: a.pem\n  key_file: a.key\n";
  EXPECT_EQ(ParseError(base + "  client_auth_type: RequireCert\n"),
            "web.yml:4:21: tls_server_config.client_auth_type: expected one of NoClientCert, "
            "RequestClientCert, RequireAnyClientCert, VerifyClientCertIfGiven, "
            "RequireAndVerifyClientCert, got 'RequireCert'");
  EXPECT_EQ(ParseError(base + "  min_version: TLS11\n"),
            "web.yml:4:16: tls_server_config.min_version: TLS11 is not supported; use TLS12 or "
            "TLS13");
  EXPECT_EQ(ParseError(base + "  min_version: 1.3\n"),
            "web.yml:4:16: tls_server_config.min_version: expected TLS12 or TLS13, got '1.3'");
  EXPECT_EQ(ParseError("tls_server_config:\n  cert_file: a.pem\n"),
            "web.yml:2:3: tls_server_config.key_file: required to serve HTTPS");
  EXPECT_EQ(ParseError("tls_server_config:\n  min_version: TLS13\n"),
            "web.yml:2:3: tls_server_config.cert_file: required to serve HTTPS");
  EXPECT_EQ(ParseError(base + "  client_auth_type: RequireAndVerifyClientCert\n"),
            "web.yml:2:3: tls_server_config.client_ca_file: required to verify client "
            "certificates");
  EXPECT_EQ(ParseError(base + "  client_ca_file: ca.pem\n"),
            "web.yml:4:19: tls_server_config.client_ca_file: set, but client_auth_type is "
            "NoClientCert (no client certificate is asked for)");
  EXPECT_EQ(ParseError("tls_server_config:\n  cert_file: ''\n  key_file: a.key\n"),
            "web.yml:2:14: tls_server_config.cert_file: expected a file path");
  EXPECT_EQ(ParseError("tls_server_config: [a.pem]\n"),
            "web.yml:1:20: tls_server_config: expected a mapping, got a list");
}

TEST(WebConfigTest, AllowsOnlyExporterToolkitsSecurityHeaders) {
  EXPECT_EQ(ParseError("http_server_config:\n  headers:\n    Content-Type: foo\n"),
            "web.yml:3:5: http_server_config.headers.Content-Type: unknown key (expected one of: "
            "Content-Security-Policy, Strict-Transport-Security, X-Content-Type-Options, "
            "X-Frame-Options, X-XSS-Protection)");
  EXPECT_EQ(ParseError("http_server_config:\n  headers:\n    X-Frame-Options: allow\n"),
            "web.yml:3:22: http_server_config.headers.X-Frame-Options: expected one of deny, "
            "sameorigin, got 'allow'");
  EXPECT_EQ(ParseError("http_server_config:\n  headers:\n    X-Content-Type-Options: sniff\n"),
            "web.yml:3:29: http_server_config.headers.X-Content-Type-Options: expected one of "
            "nosniff, got 'sniff'");
  // A header value cannot smuggle in another header.
  EXPECT_NE(ParseError("http_server_config:\n  headers:\n"
                       "    Content-Security-Policy: \"default-src 'self'\\r\\nSet-Cookie: a=b\"\n")
                .find("cannot contain line breaks"),
            std::string::npos);
  EXPECT_NE(ParseError("http_server_config:\n  headers:\n    Content-Security-Policy: '" +
                       std::string(3000, 'a') + "'\n")
                .find("headers too long"),
            std::string::npos);
}

TEST(WebConfigTest, UsersNeedBcryptHashes) {
  EXPECT_EQ(ParseError("basic_auth_users:\n  prometheus: secret\n"),
            "web.yml:2:15: basic_auth_users.prometheus: expected a bcrypt hash such as "
            "`htpasswd -nBC 10 USER` prints ($2y$10$...)");
  // An MD5-crypt hash, a truncated bcrypt hash, an out-of-range cost.
  for (const std::string& hash :
       {std::string("$1$saltsalt$qjXMvbEw8oaL.CzflDugX/"), std::string(kGrafanaHash).substr(0, 59),
        "$2b$99" + std::string(kGrafanaHash).substr(6)}) {
    EXPECT_FALSE(Parse("basic_auth_users:\n  grafana: '" + hash + "'\n")) << hash;
  }
  EXPECT_EQ(ParseError(std::string("basic_auth_users:\n  'a:b': ") + kGrafanaHash + "\n"),
            "web.yml:2:3: basic_auth_users.a:b: user names cannot contain ':' (HTTP basic auth "
            "splits there)");
  EXPECT_EQ(ParseError("basic_auth_users: [prometheus]\n"),
            "web.yml:1:19: basic_auth_users: expected a mapping, got a list");
}

TEST(WebConfigTest, BrokenYamlAndMissingFiles) {
  EXPECT_EQ(ParseError("tls_server_config: {cert_file: a\n").rfind("web.yml:", 0), 0u);
  EXPECT_NE(ParseError("tls_server_config: {cert_file: a\n").find("invalid YAML"),
            std::string::npos);
  auto missing = LoadWebConfigFile(testing::TempDir() + "/absent.yml");
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().find("absent.yml"), std::string::npos);
  // A file's relative paths resolve against its own directory.
  std::string dir = testing::TempDir();
  testing::WriteTestFile(dir + "/web.yml",
                         "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n");
  auto loaded = LoadWebConfigFile(dir + "/web.yml");
  ASSERT_TRUE(loaded) << loaded.error();
  EXPECT_EQ(loaded->tls.cert_file, dir + "/server.pem");
  EXPECT_EQ(loaded->source, dir + "/web.yml");
}

TEST(BasicAuthTest, ParsesTheAuthorizationHeader) {
  auto credentials = ParseBasicAuthorization("Basic cHJvbWV0aGV1czpyaWdodCBob3JzZQ==");
  ASSERT_TRUE(credentials);
  EXPECT_EQ(credentials->first, "prometheus");
  EXPECT_EQ(credentials->second, "right horse");
  // The scheme is case-insensitive; the password may contain ':'; it may be empty.
  credentials = ParseBasicAuthorization("basic  dTpwOnc=");
  ASSERT_TRUE(credentials);
  EXPECT_EQ(credentials->first, "u");
  EXPECT_EQ(credentials->second, "p:w");
  credentials = ParseBasicAuthorization("Basic dTo=");
  ASSERT_TRUE(credentials);
  EXPECT_EQ(credentials->second, "");
  EXPECT_FALSE(ParseBasicAuthorization("Bearer dTpw"));
  EXPECT_FALSE(ParseBasicAuthorization("Basic"));
  EXPECT_FALSE(ParseBasicAuthorization("Basic dXNlcg=="));  // no ':'
  EXPECT_FALSE(ParseBasicAuthorization("Basic dTpw*A=="));  // not base64
  EXPECT_FALSE(ParseBasicAuthorization("Basic dTp"));       // not a multiple of 4
  EXPECT_FALSE(ParseBasicAuthorization("Basic d=Tp"));      // padding in the middle
}

TEST(BasicAuthTest, VerifiesBcryptHashesAndRejectsEverythingElse) {
  BasicAuth auth(Users{{"prometheus", kPrometheusHash}, {"grafana", kGrafanaHash}});
  ASSERT_TRUE(auth.enabled());
  EXPECT_TRUE(auth.Verify("prometheus", "right horse"));  // $2y$
  EXPECT_TRUE(auth.Verify("grafana", "battery staple"));  // $2b$
  EXPECT_FALSE(auth.Verify("prometheus", "battery staple"));
  EXPECT_FALSE(auth.Verify("prometheus", "right horse "));
  EXPECT_FALSE(auth.Verify("prometheus", ""));
  EXPECT_FALSE(auth.Verify("nobody", "right horse"));
  EXPECT_FALSE(auth.Verify("Prometheus", "right horse"));
  EXPECT_FALSE(auth.Verify("prometheus", std::string("right horse\0x", 13)));

  EXPECT_TRUE(auth.Allows("Basic cHJvbWV0aGV1czpyaWdodCBob3JzZQ=="));
  EXPECT_FALSE(auth.Allows(nullptr));
  EXPECT_FALSE(auth.Allows("Basic cHJvbWV0aGV1czp3cm9uZw=="));  // prometheus:wrong
  EXPECT_FALSE(auth.Allows("Basic !!!!"));

  BasicAuth off(Users{});
  EXPECT_FALSE(off.enabled());
  EXPECT_TRUE(off.Allows(nullptr));
}

TEST(BasicAuthTest, RemembersOnlyVerifiedCredentialsAndBoundsTheCache) {
  BasicAuth auth(Users{{"prometheus", kPrometheusHash}});
  EXPECT_EQ(auth.CachedCredentials(), 0u);
  EXPECT_FALSE(auth.Verify("prometheus", "wrong"));
  EXPECT_FALSE(auth.Verify("nobody", "wrong"));
  EXPECT_EQ(auth.CachedCredentials(), 0u);  // failures are never cached
  EXPECT_TRUE(auth.Verify("prometheus", "right horse"));
  EXPECT_TRUE(auth.Verify("prometheus", "right horse"));
  EXPECT_EQ(auth.CachedCredentials(), 1u);
  EXPECT_FALSE(auth.Verify("prometheus", "right horsf"));  // near misses are not cache hits

  // Many users with verified passwords: the cache keeps at most its capacity.
  Users users;
  for (size_t i = 0; i < BasicAuth::kCacheCapacity + 10; ++i) {
    users["user" + std::to_string(i)] = kGrafanaHash;
  }
  BasicAuth many(users);
  for (const auto& [user, hash] : users) ASSERT_TRUE(many.Verify(user, "battery staple"));
  EXPECT_EQ(many.CachedCredentials(), BasicAuth::kCacheCapacity);
  EXPECT_TRUE(many.Verify("user0", "battery staple"));  // forgotten, verified again
}

// Issue 15.6: users with different costs, and unknown users, all cost the same bcrypt
// work per uncached check (work counted in rounds, not timed: timing is not asserted).
TEST(BasicAuthTest, EveryUncachedCheckCostsTheSameWhateverTheUser) {
  constexpr const char* kCost6Hash =  // "right horse" at cost 6
      "$2b$06$HqyYaWNURh902roswI0v7.Mjd7buaZNfQN7tjJbVpKD/HbbgfqSgS";
  BasicAuth auth(Users{{"fast", kPrometheusHash}, {"slow", kCost6Hash}});
  ASSERT_EQ(auth.WorkPerCheck(), 4u);  // 2^6 / 2^4
  auto work_of = [&](const std::string& user, const std::string& password) {
    uint64_t before = auth.WorkDone();
    auth.Verify(user, password);
    return auth.WorkDone() - before;
  };
  EXPECT_EQ(work_of("fast", "wrong"), 4u);        // cost 4 + padding at 4 and 5
  EXPECT_EQ(work_of("slow", "wrong"), 4u);        // cost 6
  EXPECT_EQ(work_of("nobody", "wrong"), 4u);      // padding at cost 6
  EXPECT_EQ(work_of("fast", "right horse"), 4u);  // a right password: the same
  EXPECT_EQ(work_of("fast", "right horse"), 0u);  // then cached: no bcrypt at all
  EXPECT_EQ(work_of("slow", "right horse"), 4u);
  EXPECT_TRUE(auth.Verify("slow", "right horse"));
  EXPECT_FALSE(auth.Verify("nobody", "right horse"));
}

// Checks run in parallel up to the bound, and cached credentials never wait for a slot
// (there is no lock around crypt_r any more).
TEST(BasicAuthTest, CachedCredentialsDoNotWaitForBcryptSlots) {
  BasicAuth auth(Users{{"prometheus", kPrometheusHash}});
  ASSERT_TRUE(auth.Verify("prometheus", "right horse"));
  std::atomic<bool> stop{false};
  std::vector<std::thread> attackers;
  for (int i = 0; i < 8; ++i) {
    attackers.emplace_back([&] {
      while (!stop) auth.Verify("nobody", "guess");
    });
  }
  // 1000 cached checks while eight threads keep every bcrypt slot busy: all succeed
  // without one bcrypt of their own.
  for (int i = 0; i < 1000; ++i) ASSERT_TRUE(auth.Verify("prometheus", "right horse"));
  stop = true;
  for (std::thread& attacker : attackers) attacker.join();
}

}  // namespace
}  // namespace virtcaps
