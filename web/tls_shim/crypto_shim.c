/* The libcrypto half of the TLS shim (see ssl_shim.c). CivetWeb 1.15 also calls
 * dlopen("libcrypto.so"); on a host without libssl-dev there is no file of that
 * name. This empty library, named and SONAMEd "libcrypto.so" and depending on
 * libcrypto.so.3, is already loaded when CivetWeb asks, so dlopen returns it and
 * dlsym finds every function in libcrypto.so.3. */
int virtcaps_crypto_shim_loaded(void);
int virtcaps_crypto_shim_loaded(void) { return 1; }
