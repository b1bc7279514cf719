#include "virtcaps/digest.h"

#include <gtest/gtest.h>

#include <array>
#include <string>

namespace virtcaps {
namespace {

std::string Hex(const std::array<unsigned char, 32>& digest) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string text;
  for (unsigned char byte : digest) {
    text += kDigits[byte >> 4];
    text += kDigits[byte & 0xf];
  }
  return text;
}

// FIPS 180-2 appendix B and the NIST example vectors.
TEST(DigestTest, Sha256StandardVectors) {
  EXPECT_EQ(Hex(Sha256("")), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(Hex(Sha256("abc")), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(Hex(Sha256("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(Hex(Sha256(std::string(1000000, 'a'))),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

// Around the padding boundaries: 55 bytes is the longest rest that pads within its block,
// 56..63 need a second one, and 119/120 the same one block further. Expected values from
// `head -c N /dev/zero | tr '\0' x | sha256sum`.
TEST(DigestTest, Sha256PaddingBoundaries) {
  struct Case {
    size_t length;
    const char* expected;
  };
  const Case cases[] = {
      {0, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
      {1, "2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881"},
      {55, "d5e285683cd4efc02d021a5c62014694958901005d6f71e89e0989fac77e4072"},
      {56, "04c26261370ee7541549d16dee320c723e3fd14671e66a099afe0a377c16888e"},
      {57, "ae14a2563ccf969d99aca69ce6bb74981f734bbf9f655f73b8f06db68cab5217"},
      {63, "75220b47218278e656f2013bb8f0c455a25eaf01e86c64924e9d48d89776d6f2"},
      {64, "7ce100971f64e7001e8fe5a51973ecdfe1ced42befe7ee8d5fd6219506b5393c"},
      {65, "9537c5fdf120482f7d58d25e9ed583f52c02b4e304ea814db1633ad565aed7e9"},
      {111, "5ba60613dba318e9ed9020301e5dc59c721c19d82862e4d03718708aa75d2bad"},
      {112, "87bf6e70ecc829aa717756ac6797b82de8b30fca1281ea1659df31949839fc6b"},
      {119, "000b48d4edf0fa7bee3c6236ecd2785baa5db4eeb8bb54341b029e0d9fa5fb0c"},
      {120, "13f05a0b594787f5ecd315edc96141bd3243203d1b7d4f0836f37308b276ba98"},
      {127, "70156a14adbabf98cff3a71c7084b417abf057a8efd27329ca36b7202c87d81f"},
      {128, "24da1b81d0b16df6428eee73c69fcb2a93c76bc6df706f0c6670fe6bfe800464"},
      {129, "0ec9eb33e74510bcdd1f2ea55206e82f21649c5c2becbf2b433eb475b34c01bd"},
      {130, "3afbb132863c57f08bdc32205eb6c63775397a9953819218a1f4b7cbdc0ff90f"},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(Hex(Sha256(std::string(c.length, 'x'))), c.expected) << c.length << " bytes";
  }
}

// Bytes above 0x7f (negative as char) and NUL are data like any other.
TEST(DigestTest, Sha256HashesEveryByteValue) {
  std::string bytes;
  for (int i = 0; i < 256; ++i) bytes += static_cast<char>(i);
  EXPECT_EQ(Hex(Sha256(bytes)), "40aff2e9d2d8922e47afd4648e6967497158785fbd1da870e7110266bf944880");
}

TEST(DigestTest, ConstantTimeEqualComparesEveryByte) {
  const unsigned char a[] = {1, 2, 3, 4, 5, 6, 7, 8};
  unsigned char b[] = {1, 2, 3, 4, 5, 6, 7, 8};
  EXPECT_TRUE(ConstantTimeEqual(a, b, sizeof a));
  b[0] = 0x81;
  EXPECT_FALSE(ConstantTimeEqual(a, b, sizeof a));
  b[0] = 1;
  b[7] = 9;
  EXPECT_FALSE(ConstantTimeEqual(a, b, sizeof a));
  EXPECT_TRUE(ConstantTimeEqual(a, b, sizeof a - 1));  // the difference is past size
  EXPECT_TRUE(ConstantTimeEqual(a, b, 0));
  EXPECT_TRUE(ConstantTimeEqual(nullptr, nullptr, 0));
}

TEST(DigestTest, SecureZeroWipesTheBuffer) {
  std::string secret = "correct horse battery staple";
  SecureZero(secret.data(), secret.size());
  EXPECT_EQ(secret, std::string(28, '\0'));

  unsigned char buffer[100];
  for (size_t i = 0; i < sizeof buffer; ++i) buffer[i] = static_cast<unsigned char>(i + 1);
  SecureZero(buffer, 50);
  for (size_t i = 0; i < 50; ++i) EXPECT_EQ(buffer[i], 0) << i;
  EXPECT_EQ(buffer[50], 51);  // only the size given
  SecureZero(nullptr, 0);
}

}  // namespace
}  // namespace virtcaps
