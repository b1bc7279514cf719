// GatheringWriter: what reaches the socket, in how many writes.
#include "virtcaps/gathering_writer.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

namespace virtcaps {
namespace {

// Records each write: its bytes and where they were written from.
struct Recorder {
  std::vector<std::string> writes;
  std::vector<const char*> sources;
  size_t fail_at = SIZE_MAX;  // this write (0-based) and later ones fail
  auto Sink() {
    return [this](std::string_view bytes) {
      if (writes.size() >= fail_at) return false;
      writes.emplace_back(bytes);
      sources.push_back(bytes.data());
      return true;
    };
  }
  std::string All() const {
    std::string all;
    for (const std::string& write : writes) all += write;
    return all;
  }
};

TEST(GatheringWriterTest, AResponseThatFitsLeavesInOneWrite) {
  char buffer[64];
  Recorder recorder;
  GatheringWriter writer(buffer, sizeof(buffer), recorder.Sink());
  EXPECT_TRUE(writer.Add("HTTP/1.1 200 OK\r\n\r\n"));
  EXPECT_TRUE(writer.Add("body "));
  EXPECT_TRUE(writer.Add(""));
  EXPECT_TRUE(writer.Add("tail\n"));
  EXPECT_TRUE(recorder.writes.empty());  // nothing leaves before Flush
  EXPECT_TRUE(writer.Flush());
  ASSERT_EQ(recorder.writes.size(), 1u);
  EXPECT_EQ(recorder.writes[0], "HTTP/1.1 200 OK\r\n\r\nbody tail\n");
  EXPECT_TRUE(writer.Flush());  // nothing left: no empty write
  EXPECT_EQ(recorder.writes.size(), 1u);
}

TEST(GatheringWriterTest, ALargerResponseLeavesInFullBuffers) {
  char buffer[16];
  Recorder recorder;
  GatheringWriter writer(buffer, sizeof(buffer), recorder.Sink());
  std::string head(10, 'h'), body(12, 'b'), tail(3, 't');
  EXPECT_TRUE(writer.Add(head) && writer.Add(body) && writer.Add(tail) && writer.Flush());
  ASSERT_EQ(recorder.writes.size(), 2u);
  EXPECT_EQ(recorder.writes[0], head + body.substr(0, 6));
  EXPECT_EQ(recorder.writes[1], body.substr(6) + tail);
}

TEST(GatheringWriterTest, APieceAsLargeAsTheBufferIsWrittenFromWhereItIs) {
  char buffer[16];
  Recorder recorder;
  GatheringWriter writer(buffer, sizeof(buffer), recorder.Sink());
  std::string head(4, 'h'), body(100, 'b'), tail(5, 't');
  EXPECT_TRUE(writer.Add(head) && writer.Add(body) && writer.Add(tail) && writer.Flush());
  // The head fills the buffer with the body's first 12 bytes; the next 88 bytes are
  // written straight from the body; the tail is gathered again.
  ASSERT_EQ(recorder.writes.size(), 3u);
  EXPECT_EQ(recorder.writes[0], head + body.substr(0, 12));
  EXPECT_EQ(recorder.writes[1], body.substr(12));
  EXPECT_EQ(recorder.sources[1], body.data() + 12);
  EXPECT_EQ(recorder.writes[2], tail);
  EXPECT_EQ(recorder.sources[2], buffer);
}

TEST(GatheringWriterTest, WithoutABufferEveryPieceIsItsOwnWrite) {
  Recorder recorder;
  GatheringWriter writer(nullptr, 4096, recorder.Sink());
  EXPECT_TRUE(writer.Add("head") && writer.Add("body") && writer.Add("") && writer.Flush());
  EXPECT_EQ(recorder.writes, (std::vector<std::string>{"head", "body"}));
}

TEST(GatheringWriterTest, AFailedWriteStopsEverythingAfterIt) {
  char buffer[8];
  Recorder recorder;
  recorder.fail_at = 1;
  GatheringWriter writer(buffer, sizeof(buffer), recorder.Sink());
  EXPECT_TRUE(writer.Add("12345678"));  // direct, the first write: it goes out
  EXPECT_TRUE(writer.Add("abc"));
  EXPECT_FALSE(writer.Flush());  // the second write fails
  EXPECT_FALSE(writer.Add("more"));
  EXPECT_FALSE(writer.Flush());
  EXPECT_EQ(recorder.writes, (std::vector<std::string>{"12345678"}));
}

// Any pieces, any buffer size: the bytes arrive whole and in order, and every write
// but the last carries at least a full buffer (no small segments in between).
TEST(GatheringWriterTest, RandomPiecesArriveWholeInFewWrites) {
  std::mt19937 random(13);
  for (int round = 0; round < 500; ++round) {
    size_t capacity = 1 + random() % 64;
    std::vector<char> buffer(capacity);
    Recorder recorder;
    GatheringWriter writer(buffer.data(), capacity, recorder.Sink());
    std::string expected;
    int pieces = 1 + static_cast<int>(random() % 6);
    for (int i = 0; i < pieces; ++i) {
      std::string piece(random() % 200, '\0');
      for (char& c : piece) c = static_cast<char>('a' + random() % 26);
      expected += piece;
      ASSERT_TRUE(writer.Add(piece));
    }
    ASSERT_TRUE(writer.Flush());
    ASSERT_EQ(recorder.All(), expected) << "capacity " << capacity;
    for (size_t i = 0; i + 1 < recorder.writes.size(); ++i) {
      EXPECT_GE(recorder.writes[i].size(), capacity) << "write " << i << ", capacity " << capacity;
    }
  }
}

}  // namespace
}  // namespace virtcaps
