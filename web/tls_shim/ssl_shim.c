/* The TLS shim: makes Debian 12's CivetWeb 1.15 work with OpenSSL 3.
 *
 * CivetWeb 1.15 loads OpenSSL at run time with dlopen("libssl.so") and looks up its
 * OpenSSL 1.1 function list with dlsym. OpenSSL 3 no longer exports
 * SSL_get_peer_certificate (the header maps the name to SSL_get1_peer_certificate),
 * so that slot stays NULL and CivetWeb calls through it on the first HTTPS
 * connection: a segfault (upstream civetweb issue 1334).
 *
 * This library's file name and SONAME are both "libssl.so", and virtcaps-agent
 * links it from a private directory on its RUNPATH. glibc's dlopen("libssl.so")
 * then returns this already-loaded object, and dlsym finds SSL_get_peer_certificate
 * here and every other function in its dependency libssl.so.3.
 */
#include <openssl/ssl.h>

/* Without the #undef, the macro would turn this definition into one of
 * SSL_get1_peer_certificate, and the old name would still be missing. */
#undef SSL_get_peer_certificate

X509 *SSL_get_peer_certificate(const SSL *ssl);

/* OpenSSL 1.1's SSL_get_peer_certificate returned a new reference, as
 * SSL_get1_peer_certificate does; CivetWeb frees it with X509_free. */
X509 *SSL_get_peer_certificate(const SSL *ssl) { return SSL_get1_peer_certificate(ssl); }

/* virtcaps-agent calls this at start-up, which also makes the link to this library
 * a real dependency that no --as-needed can drop. */
int virtcaps_tls_shim_loaded(void);
int virtcaps_tls_shim_loaded(void) { return 1; }
