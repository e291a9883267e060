#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include <percore/proto/detail/gather_buffer.h>

namespace percore::testing {

// Every unconsumed byte of a gather buffer, in order.
inline std::string flatten(const GatherBuffer& buffer) {
  std::string bytes;
  for (size_t i = 0; i < buffer.chunk_count(); ++i)
    bytes += buffer.chunk(i);
  return bytes;
}

// `size` bytes of a fixed pseudo-random pattern (an LCG seeded by `seed`), so
// that a misplaced or dropped byte shows.
inline std::string patterned_bytes(size_t size, uint32_t seed = 1) {
  std::string bytes(size, '\0');
  uint32_t state = seed;
  for (char& byte : bytes) {
    state = state * 1103515245u + 12345u;
    byte = static_cast<char>(state >> 16);
  }
  return bytes;
}

}  // namespace percore::testing
