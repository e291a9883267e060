#pragma once

#include <cstdint>

// The 32-bit big-endian fields of the frame headers (PRPC and STRM:
// body_size, meta_size). Any thread.
namespace percore {

inline void put_uint32_big_endian(char* out, uint32_t value) {
  out[0] = static_cast<char>(value >> 24);
  out[1] = static_cast<char>(value >> 16);
  out[2] = static_cast<char>(value >> 8);
  out[3] = static_cast<char>(value);
}

inline uint32_t get_uint32_big_endian(const char* in) {
  return (static_cast<uint32_t>(static_cast<unsigned char>(in[0])) << 24) |
         (static_cast<uint32_t>(static_cast<unsigned char>(in[1])) << 16) |
         (static_cast<uint32_t>(static_cast<unsigned char>(in[2])) << 8) |
         static_cast<uint32_t>(static_cast<unsigned char>(in[3]));
}

}  // namespace percore
