#pragma once

#include <cstddef>
#include <cstdint>

// Constants of brpc's baidu_std framing (docs/PROTOCOL.md): a 12-byte header
// "PRPC" + body_size (uint32 BE) + meta_size (uint32 BE), then the body.
namespace percore {

inline constexpr size_t kFrameHeaderBytes = 12;
inline constexpr char kFrameMagic[4] = {'P', 'R', 'P', 'C'};
// Default limit on body_size; both sides make it configurable.
inline constexpr size_t kDefaultMaxBodyBytes = 64u << 20;

// compress_type values of the meta. percore supports kNone only; anything
// else is answered with 1003 rather than misparsed.
enum class CompressType : int32_t { kNone = 0, kSnappy = 1, kGzip = 2, kZlib = 3 };

}  // namespace percore
