// --web.config.file parsing (exporter-toolkit's format) and basic auth.
#include "virtcaps/web_config.h"

#include <gtest/gtest.h>

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

TEST(WebConfigTest, EmptyFileOrSectionsMeanPlainHttpWithoutAuth) {
  for (const char* yaml : {"", "tls_server_config:\nbasic_auth_users:\nhttp_server_config:\n",
                           "http_server_config:\n  headers:\n"}) {
    auto config = Parse(yaml);
    ASSERT_TRUE(config) << config.error();
    EXPECT_FALSE(config->tls.enabled);
    EXPECT_TRUE(config->headers.empty());
    EXPECT_TRUE(config->basic_auth_users.empty());
  }
  auto defaults = Parse("tls_server_config:\n  cert_file: a.pem\n  key_file: a.key\n");
  ASSERT_TRUE(defaults) << defaults.error();
  EXPECT_EQ(defaults->tls.client_auth, TlsServerConfig::ClientAuth::kNoClientCert);
  EXPECT_EQ(defaults->tls.min_version, TlsServerConfig::Version::kTls12);
}

TEST(WebConfigTest, AcceptsEveryClientAuthTypeOfExporterToolkit) {
  using ClientAuth = TlsServerConfig::ClientAuth;
  const std::pair<const char*, ClientAuth> kCases[] = {
      {"NoClientCert", ClientAuth::kNoClientCert},
      {"RequestClientCert", ClientAuth::kRequestClientCert},
      {"RequireAnyClientCert", ClientAuth::kRequireAnyClientCert},
      {"RequireClientCert", ClientAuth::kRequireAnyClientCert},
      {"VerifyClientCertIfGiven", ClientAuth::kVerifyClientCertIfGiven},
      {"RequireAndVerifyClientCert", ClientAuth::kRequireAndVerifyClientCert},
  };
  for (const auto& [name, expected] : kCases) {
    bool verifies = expected == ClientAuth::kVerifyClientCertIfGiven ||
                    expected == ClientAuth::kRequireAndVerifyClientCert;
    std::string yaml =
        "tls_server_config:\n  cert_file: a.pem\n  key_file: a.key\n"
        "  client_auth_type: " +
        std::string(name) + "\n" + (verifies ? "  client_ca_file: ca.pem\n" : "");
    auto config = Parse(yaml);
    ASSERT_TRUE(config) << name << ": " << config.error();
    EXPECT_EQ(config->tls.client_auth, expected) << name;
  }
}

TEST(WebConfigTest, UnknownKeysNameFileLineColumnAndKeyPath) {
  EXPECT_EQ(ParseError("basic_auth_users: {}\ntls_config:\n  cert_file: x\n"),
            "web.yml:2:1: tls_config: unknown key (expected one of: basic_auth_users, "
            "http_server_config, tls_server_config)");
  EXPECT_EQ(ParseError("tls_server_config:\n  cert_file: a.pem\n  keyfile: a.key\n"),
            "web.yml:3:3: tls_server_config.keyfile: unknown key (expected one of: cert_file, "
            "client_auth_type, client_ca_file, key_file, min_version, "
            "prefer_server_cipher_suites)");
  EXPECT_EQ(ParseError("http_server_config:\n  header:\n    X-Frame-Options: deny\n"),
            "web.yml:2:3: http_server_config.header: unknown key (expected one of: headers, "
            "http2)");
}

TEST(WebConfigTest, RefusesExporterToolkitSettingsItDoesNotImplement) {
  EXPECT_EQ(ParseError("tls_server_config:\n  cert_file: a.pem\n  key_file: a.key\n"
                       "  cipher_suites: [TLS_AES_128_GCM_SHA256]\n"),
            "web.yml:4:3: tls_server_config.cipher_suites: exporter-toolkit setting not "
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

}  // namespace
}  // namespace virtcaps
