#include <percore/base/utf8.h>

namespace percore {

bool Utf8Check::feed(unsigned char byte) {
  if (need_ == 0) {
    if (byte < 0x80)
      return true;
    if (byte >= 0xC2 && byte <= 0xDF) {
      need_ = 1;
    } else if (byte >= 0xE0 && byte <= 0xEF) {
      need_ = 2;
      low_ = byte == 0xE0 ? 0xA0 : 0x80;   // Overlong.
      high_ = byte == 0xED ? 0x9F : 0xBF;  // Surrogates.
    } else if (byte >= 0xF0 && byte <= 0xF4) {
      need_ = 3;
      low_ = byte == 0xF0 ? 0x90 : 0x80;   // Overlong.
      high_ = byte == 0xF4 ? 0x8F : 0xBF;  // Past U+10FFFF.
    } else {
      return false;
    }
    return true;
  }
  if (byte < low_ || byte > high_)
    return false;
  --need_;
  low_ = 0x80;
  high_ = 0xBF;
  return true;
}

bool is_valid_utf8(std::string_view text) {
  Utf8Check check;
  for (const char c : text) {
    if (!check.feed(static_cast<unsigned char>(c)))
      return false;
  }
  return check.complete();
}

namespace {

// The length of the UTF-8 sequence at text[i] that is not a control
// character (C0, DEL, C1) nor a line or paragraph separator (U+2028,
// U+2029, which some readers take as a new line); 0 if there is none.
size_t printable_sequence_at(std::string_view text, size_t i) {
  const auto first = static_cast<unsigned char>(text[i]);
  if (first < 0x80)
    return first < 0x20 || first == 0x7F ? 0 : 1;
  Utf8Check check;
  for (size_t k = i; k < text.size(); ++k) {
    if (!check.feed(static_cast<unsigned char>(text[k])))
      return 0;
    if (!check.complete())
      continue;
    const std::string_view sequence = text.substr(i, k - i + 1);
    if (sequence.size() == 2 && first == 0xC2 && static_cast<unsigned char>(sequence[1]) < 0xA0)
      return 0;  // U+0080..U+009F.
    if (sequence == "\xE2\x80\xA8" || sequence == "\xE2\x80\xA9")
      return 0;
    return sequence.size();
  }
  return 0;  // Cut short.
}

}  // namespace

std::string printable_utf8(std::string_view text, size_t max_bytes, bool* cut) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  if (cut != nullptr)
    *cut = false;
  for (size_t i = 0; i < text.size();) {
    const size_t length = printable_sequence_at(text, i);
    const size_t written = length == 0 ? 4 : length;
    if (out.size() + written > max_bytes) {
      if (cut != nullptr)
        *cut = true;
      break;
    }
    if (length == 0) {
      const auto byte = static_cast<unsigned char>(text[i]);
      out += "\\x";
      out += kHex[byte >> 4];
      out += kHex[byte & 0x0F];
      ++i;
    } else {
      out.append(text.substr(i, length));
      i += length;
    }
  }
  return out;
}

}  // namespace percore
