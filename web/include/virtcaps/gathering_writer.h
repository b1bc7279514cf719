// Writes a response's pieces (head, body, live tail) gathered in a buffer, so that a
// response that fits in it leaves in one write. Each write on a TCP_NODELAY socket is a
// segment of its own, a wakeup of the client and an ACK to process: three writes per
// /metrics response cost a third of the agent's throughput under a flood of scrapes.
#pragma once

#include <algorithm>
#include <cstring>
#include <string_view>
#include <utility>

namespace virtcaps {

// `write(std::string_view)` sends bytes and says whether they all went out. A piece that
// cannot fit in the (empty) buffer is written straight from where it is, so large bodies
// are not copied; without a buffer (capacity 0) every piece is. After a failed write
// nothing more is written and Add/Flush return false.
template <typename Write>
class GatheringWriter {
 public:
  GatheringWriter(char* buffer, size_t capacity, Write write)
      : buffer_(buffer), capacity_(buffer == nullptr ? 0 : capacity), write_(std::move(write)) {}
  GatheringWriter(const GatheringWriter&) = delete;
  GatheringWriter& operator=(const GatheringWriter&) = delete;

  bool Add(std::string_view piece) {
    while (ok_ && !piece.empty()) {
      if (used_ == 0 && piece.size() >= capacity_) {
        ok_ = write_(piece);
        return ok_;
      }
      size_t take = std::min(piece.size(), capacity_ - used_);
      std::memcpy(buffer_ + used_, piece.data(), take);
      used_ += take;
      piece.remove_prefix(take);
      if (used_ == capacity_) Flush();
    }
    return ok_;
  }
  // Writes what is gathered; true when everything added went out.
  bool Flush() {
    if (ok_ && used_ > 0) ok_ = write_(std::string_view(buffer_, used_));
    used_ = 0;
    return ok_;
  }

 private:
  char* buffer_;
  size_t capacity_;
  Write write_;
  size_t used_ = 0;
  bool ok_ = true;
};

}  // namespace virtcaps
