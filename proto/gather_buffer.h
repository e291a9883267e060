#pragma once

#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace percore {

// Bytes waiting to be written with one gathered write (writev or Asio's
// buffer sequences). Small pieces (headers, metas, messages) are serialized
// straight into one contiguous arena; large pieces handed over as strings
// (attachments) are moved in and referenced, never copied.
// Memory is reclaimed when everything is consumed, so a writer keeps two: one
// being written, one collecting the next batch, swapped when the first empties.
//
// Owns: the arena and every string moved into it.
// Threads: not thread-safe; one owner thread at a time (the connection's
// writer). Views returned by chunk() are valid until the next append or
// consume.
class GatherBuffer {
 public:
  // Strings shorter than this are copied into the arena: a separate chunk
  // costs more than the copy.
  static constexpr size_t kCopyThreshold = 512;

  GatherBuffer() = default;
  GatherBuffer(const GatherBuffer&) = delete;
  GatherBuffer& operator=(const GatherBuffer&) = delete;
  GatherBuffer(GatherBuffer&&) noexcept = default;
  GatherBuffer& operator=(GatherBuffer&&) noexcept = default;

  // Extends the arena by `bytes` and returns where to write them. The pointer
  // is valid until the next append.
  char* append_space(size_t bytes);
  // Copies `bytes` into the arena.
  void append_copy(std::string_view bytes);
  // Takes `bytes` by move; large strings become their own chunk.
  void append_owned(std::string&& bytes);
  // Shares `bytes` (kept alive until consumed); small ones are copied. For
  // bytes that may have to be written again elsewhere (a retried call).
  void append_shared(std::shared_ptr<const std::string> bytes);

  // Bytes not yet consumed.
  size_t size() const { return unconsumed_bytes_; }
  bool empty() const { return unconsumed_bytes_ == 0; }

  // The unconsumed bytes as a sequence of chunks.
  size_t chunk_count() const { return chunks_.size() - first_chunk_; }
  std::string_view chunk(size_t index) const;
  // Fills up to `max_vecs` iovecs; returns how many were filled.
  int fill_iovecs(iovec* vecs, int max_vecs) const;

  // Drops the first `bytes` unconsumed bytes (a write that took them). When
  // everything is consumed the memory is kept for reuse.
  void consume(size_t bytes);
  void clear();
  // Exchanges contents without allocating (std::swap would move through a
  // temporary, and moving a std::deque allocates a fresh map for the source).
  void swap(GatherBuffer& other) noexcept;

 private:
  enum class Source : uint8_t { kArena, kOwned, kShared };
  struct Chunk {
    Source source;
    uint32_t index;  // Into owned_ or shared_.
    size_t offset;
    size_t size;
  };

  std::string arena_;
  std::deque<std::string> owned_;
  std::deque<std::shared_ptr<const std::string>> shared_;
  std::vector<Chunk> chunks_;
  size_t first_chunk_ = 0;
  size_t unconsumed_bytes_ = 0;
};

inline void swap(GatherBuffer& a, GatherBuffer& b) noexcept {
  a.swap(b);
}

}  // namespace percore
