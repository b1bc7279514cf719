// SHA-256 and memory-safety helpers without OpenSSL. The agent loads OpenSSL only when TLS
// is configured, yet basic auth needs a digest of the credentials for its cache key without
// it; these small self-contained versions serve that.
#pragma once

#include <array>
#include <cstddef>
#include <string_view>

namespace virtcaps {

// FIPS 180-4 SHA-256 of data, as the 32-byte digest. Portable code, no intrinsics; its
// internal copies of the input (schedule, last block) are wiped before returning.
std::array<unsigned char, 32> Sha256(std::string_view data);

// Overwrites size bytes at data with zeros, in a way the compiler cannot elide even when
// the memory is never read again (glibc's explicit_bzero). size 0 does nothing.
void SecureZero(void* data, size_t size);

// Whether the size bytes at a and b are equal, looking at every byte whatever the first
// difference (no early exit), so the time taken does not reveal where they differ. size 0
// is equal.
bool ConstantTimeEqual(const void* a, const void* b, size_t size);

}  // namespace virtcaps
