// The TLS module (see tls_module.h): everything the agent does with OpenSSL, built as
// libvirtcaps-tls.so and loaded only when TLS is configured.
#include <dlfcn.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <vector>

#include "virtcaps/tls_module.h"

// Defined by the TLS shims (web/tls_shim); calling them keeps this module linked to
// them whatever the linker's --as-needed setting.
extern "C" int virtcaps_tls_shim_loaded(void);
extern "C" int virtcaps_crypto_shim_loaded(void);

namespace virtcaps {

namespace {

// The newest OpenSSL error as text, and an empty error queue.
std::string OpenSslError() {
  unsigned long code = ERR_get_error();
  std::string text = "unknown OpenSSL error";
  if (code != 0) {
    char buffer[256];
    ERR_error_string_n(code, buffer, sizeof(buffer));
    text = buffer;
  }
  ERR_clear_error();
  return text;
}

// Private keys must be unencrypted: the agent has nobody to ask for a passphrase.
int NoPassphrase(char*, int, int, void*) { return -1; }

// RequestClientCert and RequireAnyClientCert take any certificate, unverified.
int AcceptAnyCertificate(int, X509_STORE_CTX*) { return 1; }

struct BioCloser {
  void operator()(BIO* bio) const { BIO_free(bio); }
};
using BioPtr = std::unique_ptr<BIO, BioCloser>;

// Every PEM certificate in `text`, in order.
Expected<std::vector<X509*>> ReadCertificates(const std::string& text, const std::string& what) {
  BioPtr bio(BIO_new_mem_buf(text.data(), static_cast<int>(text.size())));
  std::vector<X509*> certificates;
  if (!bio) return Status::Error(what + ": " + OpenSslError());
  while (X509* certificate = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) {
    certificates.push_back(certificate);
  }
  // Reading stops with "no start line" at the end of the file; anything else is damage.
  unsigned long error = ERR_peek_last_error();
  if (ERR_GET_LIB(error) == ERR_LIB_PEM && ERR_GET_REASON(error) == PEM_R_NO_START_LINE) {
    ERR_clear_error();
  } else if (error != 0) {
    for (X509* certificate : certificates) X509_free(certificate);
    return Status::Error(what + ": " + OpenSslError());
  }
  if (certificates.empty()) return Status::Error(what + ": no PEM certificate found");
  return certificates;
}

std::string SubjectOf(X509* certificate) {
  char buffer[512];
  X509_NAME_oneline(X509_get_subject_name(certificate), buffer, sizeof(buffer));
  return buffer;
}

std::string SerialOf(X509* certificate) {
  BIGNUM* number = ASN1_INTEGER_to_BN(X509_get0_serialNumber(certificate), nullptr);
  if (number == nullptr) return "";
  char* hex = BN_bn2hex(number);
  std::string serial = hex ? hex : "";
  OPENSSL_free(hex);
  BN_free(number);
  return serial;
}

std::string NotAfterOf(X509* certificate) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || ASN1_TIME_print(bio.get(), X509_get0_notAfter(certificate)) != 1) return "";
  char* data = nullptr;
  long size = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(size));
}

std::string FingerprintOf(X509* certificate) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (X509_digest(certificate, EVP_sha256(), digest, &length) != 1) return "";
  static const char kHex[] = "0123456789ABCDEF";
  std::string text;
  for (unsigned int i = 0; i < length; ++i) {
    if (i > 0) text += ':';
    text += kHex[digest[i] >> 4];
    text += kHex[digest[i] & 15];
  }
  return text;
}

int ClientHello(SSL* ssl, int* alert, void* arg) {
  const auto* provider = static_cast<const TlsCredentialProvider*>(arg);
  std::shared_ptr<const TlsCredentials> credentials = provider->CurrentTls();
  if (credentials && credentials->ApplyTo(ssl)) return SSL_CLIENT_HELLO_SUCCESS;
  *alert = SSL_AD_INTERNAL_ERROR;
  return SSL_CLIENT_HELLO_ERROR;
}

// The OpenSSL objects of one set of credentials.
struct Material {
  X509* certificate = nullptr;
  STACK_OF(X509) * chain = nullptr;  // intermediates after the leaf in cert_file
  EVP_PKEY* key = nullptr;
  X509_STORE* client_cas = nullptr;                 // null: no verification against CAs
  STACK_OF(X509_NAME) * client_ca_names = nullptr;  // sent in the CertificateRequest
  int verify_mode = SSL_VERIFY_NONE;
  bool accept_any_certificate = false;
  int min_version = TLS1_2_VERSION;
  std::string cipher_list;  // TLS 1.2 suites, OpenSSL's names joined by ':'

  Material() = default;
  Material(const Material&) = delete;
  Material& operator=(const Material&) = delete;
  ~Material() {
    X509_free(certificate);
    sk_X509_pop_free(chain, X509_free);
    EVP_PKEY_free(key);
    X509_STORE_free(client_cas);
    sk_X509_NAME_pop_free(client_ca_names, X509_NAME_free);
  }
};

class OpenSslCredentials final : public TlsCredentials {
 public:
  explicit OpenSslCredentials(std::unique_ptr<Material> material)
      : TlsCredentials(SubjectOf(material->certificate), SerialOf(material->certificate),
                       NotAfterOf(material->certificate), FingerprintOf(material->certificate)),
        material_(std::move(material)) {}

  bool ApplyTo(void* ssl_pointer) const override;

 private:
  std::unique_ptr<Material> material_;
};

Expected<std::shared_ptr<const TlsCredentials>> MakeCredentials(const TlsServerConfig& config,
                                                                TlsPemTexts& texts) {
  using ClientAuth = TlsServerConfig::ClientAuth;
  auto material = std::make_unique<Material>();
  ERR_clear_error();

  const std::string cert_what = "tls_server_config.cert_file: " + config.cert_file;
  auto certificates = ReadCertificates(texts.cert, cert_what);
  if (!certificates) return certificates.status();
  material->certificate = (*certificates)[0];
  material->chain = sk_X509_new_null();
  for (size_t i = 1; i < certificates->size(); ++i)
    sk_X509_push(material->chain, (*certificates)[i]);

  const std::string key_what = "tls_server_config.key_file: " + config.key_file;
  {
    BioPtr bio(BIO_new_mem_buf(texts.key.data(), static_cast<int>(texts.key.size())));
    material->key =
        bio ? PEM_read_bio_PrivateKey(bio.get(), nullptr, NoPassphrase, nullptr) : nullptr;
    OPENSSL_cleanse(texts.key.data(), texts.key.size());
  }
  if (material->key == nullptr) {
    return Status::Error(key_what + ": cannot read an unencrypted PEM private key (" +
                         OpenSslError() + ")");
  }
  if (X509_check_private_key(material->certificate, material->key) != 1) {
    ERR_clear_error();
    return Status::Error(key_what + ": does not match the certificate in " + config.cert_file);
  }

  if (!config.client_ca_file.empty()) {
    const std::string ca_what = "tls_server_config.client_ca_file: " + config.client_ca_file;
    auto cas = ReadCertificates(texts.client_ca, ca_what);
    if (!cas) return cas.status();
    material->client_cas = X509_STORE_new();
    material->client_ca_names = sk_X509_NAME_new_null();
    for (X509* ca : *cas) {
      X509_STORE_add_cert(material->client_cas, ca);  // takes its own reference
      sk_X509_NAME_push(material->client_ca_names, X509_NAME_dup(X509_get_subject_name(ca)));
      X509_free(ca);
    }
  }

  switch (config.client_auth) {
    case ClientAuth::kNoClientCert:
      material->verify_mode = SSL_VERIFY_NONE;
      break;
    case ClientAuth::kRequestClientCert:
      material->verify_mode = SSL_VERIFY_PEER;
      material->accept_any_certificate = true;
      break;
    case ClientAuth::kRequireAnyClientCert:
      material->verify_mode = SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
      material->accept_any_certificate = true;
      break;
    case ClientAuth::kVerifyClientCertIfGiven:
      material->verify_mode = SSL_VERIFY_PEER;
      break;
    case ClientAuth::kRequireAndVerifyClientCert:
      material->verify_mode = SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
      break;
  }
  material->min_version =
      config.min_version == TlsServerConfig::Version::kTls13 ? TLS1_3_VERSION : TLS1_2_VERSION;
  for (const std::string& suite : config.cipher_suites) {
    material->cipher_list += (material->cipher_list.empty() ? "" : ":") + suite;
  }
  return std::shared_ptr<const TlsCredentials>(new OpenSslCredentials(std::move(material)));
}

bool OpenSslCredentials::ApplyTo(void* ssl_pointer) const {
  SSL* ssl = static_cast<SSL*>(ssl_pointer);
  const Material& m = *material_;
  // SSL_use_cert_and_key, set1_verify_cert_store and the CA list take their own
  // references: the connection keeps working if these credentials are replaced.
  if (SSL_use_cert_and_key(ssl, m.certificate, m.key, m.chain, 1) != 1) return false;
  if (SSL_set_min_proto_version(ssl, m.min_version) != 1) return false;
  if (!m.cipher_list.empty() && SSL_set_cipher_list(ssl, m.cipher_list.c_str()) != 1) return false;
  SSL_set_verify(ssl, m.verify_mode, m.accept_any_certificate ? AcceptAnyCertificate : nullptr);
  if (m.client_cas != nullptr && SSL_set1_verify_cert_store(ssl, m.client_cas) != 1) return false;
  if (m.client_ca_names != nullptr) SSL_set_client_CA_list(ssl, SSL_dup_CA_list(m.client_ca_names));
  return true;
}

Status ConfigureContext(void* ssl_ctx, const TlsCredentialProvider* provider,
                        const std::vector<std::string>& default_cipher_suites) {
  SSL_CTX* context = static_cast<SSL_CTX*>(ssl_ctx);
  if (context == nullptr || provider == nullptr) return Status::Error("no SSL context");
  if (SSL_CTX_set_min_proto_version(context, TLS1_2_VERSION) != 1) {
    return Status::Error("cannot require TLS 1.2: " + OpenSslError());
  }
  // TLS 1.2 offers only ECDHE with AEAD ciphers until a handshake applies the configured
  // list (a subset of these): no static-RSA key exchange, no CBC.
  std::string defaults;
  for (const std::string& suite : default_cipher_suites) {
    defaults += (defaults.empty() ? "" : ":") + suite;
  }
  if (SSL_CTX_set_cipher_list(context, defaults.c_str()) != 1) {
    return Status::Error("cannot set the TLS 1.2 cipher suites: " + OpenSslError());
  }
  // No session resumption: a resumed session would skip the client-certificate check
  // of settings that may have changed since.
  SSL_CTX_set_session_cache_mode(context, SSL_SESS_CACHE_OFF);
  SSL_CTX_set_num_tickets(context, 0);
  SSL_CTX_set_options(context, SSL_OP_NO_TICKET | SSL_OP_NO_RENEGOTIATION |
                                   SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_COMPRESSION);
  // The ClientHello hook runs before the version is chosen and the certificate is
  // sent, so it can set both, and the verification policy, per connection.
  SSL_CTX_set_client_hello_cb(context, ClientHello, const_cast<TlsCredentialProvider*>(provider));
  return Status();
}

Status CheckLookup() {
  if (virtcaps_tls_shim_loaded() != 1 || virtcaps_crypto_shim_loaded() != 1) {
    return Status::Error("the TLS shim is not loaded");
  }
  // The very lookup CivetWeb makes, without loading anything new.
  void* handle = dlopen("libssl.so", RTLD_LAZY | RTLD_NOLOAD);
  if (handle == nullptr) {
    return Status::Error(
        "the TLS shim libssl.so is not loaded; CivetWeb would crash on the first HTTPS "
        "connection (it belongs in the agent's RUNPATH, e.g. /usr/lib/virtcaps)");
  }
  bool found = dlsym(handle, "SSL_get_peer_certificate") != nullptr;
  dlclose(handle);
  if (!found) {
    return Status::Error(
        "the loaded libssl.so lacks SSL_get_peer_certificate; CivetWeb would crash on the "
        "first HTTPS connection");
  }
  return Status();
}

class OpenSslTlsModule final : public TlsModule {
 public:
  std::shared_ptr<const TlsCredentials> MakeCredentials(const TlsServerConfig& config,
                                                        TlsPemTexts& texts,
                                                        std::string& error) const override {
    auto made = virtcaps::MakeCredentials(config, texts);
    if (!made) {
      error = made.error();
      return nullptr;
    }
    return *made;
  }
  std::string ConfigureServerContext(
      void* ssl_ctx, const TlsCredentialProvider* provider,
      const std::vector<std::string>& default_cipher_suites) const override {
    return ConfigureContext(ssl_ctx, provider, default_cipher_suites).message();
  }
  std::string CheckCivetwebLookup() const override { return CheckLookup().message(); }
};

}  // namespace

}  // namespace virtcaps

extern "C" __attribute__((visibility("default"))) const virtcaps::TlsModule*
virtcaps_tls_module_v1() {
  static const virtcaps::OpenSslTlsModule module;
  return &module;
}
