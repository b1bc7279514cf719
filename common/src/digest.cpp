#include "virtcaps/digest.h"

#include <string.h>  // explicit_bzero (glibc)

#include <cstdint>

namespace virtcaps {

namespace {

// FIPS 180-4 section 4.2.2: the first 32 bits of the fractional parts of the cube roots of
// the first 64 primes.
constexpr uint32_t kRound[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

// Section 5.3.3: the first 32 bits of the fractional parts of the square roots of the first
// 8 primes.
constexpr uint32_t kInitial[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                  0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};

constexpr size_t kBlockSize = 64;

uint32_t RotateRight(uint32_t x, unsigned n) { return (x >> n) | (x << (32 - n)); }

// Section 4.1.2.
uint32_t Choose(uint32_t x, uint32_t y, uint32_t z) { return (x & y) ^ (~x & z); }
uint32_t Majority(uint32_t x, uint32_t y, uint32_t z) { return (x & y) ^ (x & z) ^ (y & z); }
uint32_t BigSigma0(uint32_t x) {
  return RotateRight(x, 2) ^ RotateRight(x, 13) ^ RotateRight(x, 22);
}
uint32_t BigSigma1(uint32_t x) {
  return RotateRight(x, 6) ^ RotateRight(x, 11) ^ RotateRight(x, 25);
}
uint32_t SmallSigma0(uint32_t x) { return RotateRight(x, 7) ^ RotateRight(x, 18) ^ (x >> 3); }
uint32_t SmallSigma1(uint32_t x) { return RotateRight(x, 17) ^ RotateRight(x, 19) ^ (x >> 10); }

// Section 6.2.2: one 64-byte block into the hash value. schedule is the caller's so that it
// can be wiped once, at the end.
void ProcessBlock(uint32_t (&hash)[8], const unsigned char* block, uint32_t (&schedule)[64]) {
  for (size_t t = 0; t < 16; ++t) {
    const unsigned char* word = block + 4 * t;
    schedule[t] = (uint32_t{word[0]} << 24) | (uint32_t{word[1]} << 16) | (uint32_t{word[2]} << 8) |
                  uint32_t{word[3]};
  }
  for (size_t t = 16; t < 64; ++t) {
    schedule[t] = SmallSigma1(schedule[t - 2]) + schedule[t - 7] + SmallSigma0(schedule[t - 15]) +
                  schedule[t - 16];
  }

  uint32_t a = hash[0], b = hash[1], c = hash[2], d = hash[3];
  uint32_t e = hash[4], f = hash[5], g = hash[6], h = hash[7];
  for (size_t t = 0; t < 64; ++t) {
    uint32_t t1 = h + BigSigma1(e) + Choose(e, f, g) + kRound[t] + schedule[t];
    uint32_t t2 = BigSigma0(a) + Majority(a, b, c);
    h = g;
    g = f;
    f = e;
    e = d + t1;
    d = c;
    c = b;
    b = a;
    a = t1 + t2;
  }
  hash[0] += a;
  hash[1] += b;
  hash[2] += c;
  hash[3] += d;
  hash[4] += e;
  hash[5] += f;
  hash[6] += g;
  hash[7] += h;
}

}  // namespace

std::array<unsigned char, 32> Sha256(std::string_view data) {
  uint32_t hash[8];
  for (size_t i = 0; i < 8; ++i) hash[i] = kInitial[i];
  uint32_t schedule[64];

  const auto* input = reinterpret_cast<const unsigned char*>(data.data());
  const size_t whole = data.size() - data.size() % kBlockSize;
  for (size_t offset = 0; offset < whole; offset += kBlockSize) {
    ProcessBlock(hash, input + offset, schedule);
  }

  // Section 5.1.1: the rest of the message, a 1 bit, zeros up to 56 bytes mod 64, then the
  // message length in bits as a 64-bit big-endian integer. One block, or two when the rest
  // leaves fewer than 9 bytes for the 0x80 and the length.
  unsigned char tail[2 * kBlockSize] = {};
  const size_t rest = data.size() - whole;
  for (size_t i = 0; i < rest; ++i) tail[i] = input[whole + i];
  tail[rest] = 0x80;
  const size_t tail_size = rest + 1 + 8 <= kBlockSize ? kBlockSize : 2 * kBlockSize;
  // The length is in bits, modulo 2^64 (a string_view cannot exceed 2^61 bytes here anyway).
  const uint64_t bits = static_cast<uint64_t>(data.size()) * 8;
  for (size_t i = 0; i < 8; ++i) {
    tail[tail_size - 1 - i] = static_cast<unsigned char>(bits >> (8 * i));
  }
  for (size_t offset = 0; offset < tail_size; offset += kBlockSize) {
    ProcessBlock(hash, tail + offset, schedule);
  }

  std::array<unsigned char, 32> digest;
  for (size_t i = 0; i < 8; ++i) {
    digest[4 * i] = static_cast<unsigned char>(hash[i] >> 24);
    digest[4 * i + 1] = static_cast<unsigned char>(hash[i] >> 16);
    digest[4 * i + 2] = static_cast<unsigned char>(hash[i] >> 8);
    digest[4 * i + 3] = static_cast<unsigned char>(hash[i]);
  }
  // The input may be a password: no copy of it, or of words derived from it, stays on the
  // stack.
  SecureZero(tail, sizeof tail);
  SecureZero(schedule, sizeof schedule);
  SecureZero(hash, sizeof hash);
  return digest;
}

void SecureZero(void* data, size_t size) {
  if (size == 0) return;  // explicit_bzero's pointer is declared non-null
  explicit_bzero(data, size);
}

bool ConstantTimeEqual(const void* a, const void* b, size_t size) {
  const auto* left = static_cast<const unsigned char*>(a);
  const auto* right = static_cast<const unsigned char*>(b);
  // Through a volatile, so the compiler cannot stop at the first nonzero XOR.
  volatile unsigned char difference = 0;
  for (size_t i = 0; i < size; ++i) {
    difference = static_cast<unsigned char>(difference | (left[i] ^ right[i]));
  }
  return difference == 0;
}

}  // namespace virtcaps
