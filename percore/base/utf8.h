#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace percore {

// Checks that bytes are UTF-8 as they arrive, one at a time (RFC 3629: no
// overlong forms, no surrogates, nothing past U+10FFFF).
//
// Owns: the state of the sequence under way. Threads: one at a time.
class Utf8Check {
 public:
  // False at the first byte that cannot be part of UTF-8 here.
  bool feed(unsigned char byte);
  // No sequence is half received.
  bool complete() const { return need_ == 0; }
  void reset() { need_ = 0; }

 private:
  int need_ = 0;  // Continuation bytes still due.
  unsigned char low_ = 0x80;
  unsigned char high_ = 0xBF;
};

bool is_valid_utf8(std::string_view text);

// `text` fit for one line of a log or a WebSocket close reason: each byte
// of a control character (C0 and DEL; C1, U+0080..U+009F, as its two
// bytes), of U+2028 and U+2029 (line and paragraph separators), or not part
// of a UTF-8 sequence is written \xHH, so that what a peer sent can neither
// forge a line (CR, LF, NEL) nor drive a terminal (ESC, CSI) nor break a
// reader that wants UTF-8.
// At most `max_bytes` bytes, cut between characters (never inside one or
// inside an \xHH); `*cut` (if given) says whether anything was left out.
std::string printable_utf8(std::string_view text, size_t max_bytes = std::string::npos,
                           bool* cut = nullptr);

}  // namespace percore
