#pragma once

#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <percore/proto/detail/spare_blocks.h>

namespace percore {

// Bytes waiting to be written with one gathered write (writev or Asio's
// buffer sequences). Small pieces (headers, metas, messages) are serialized
// straight into an arena; large pieces handed over as strings (attachments)
// or shared (a call's encoded head, kept for a resend) are referenced, never
// copied.
// The arena is a chain of blocks: one block grows by reallocation up to
// kArenaBlockBytes, then new blocks start, so a large backlog (a peer that
// does not read) costs its size, never twice its size in a reallocation.
// Arena bytes are left uninitialized until their writer fills them (no
// zero-fill of a 1 MiB answer before it is serialized).
// Memory is reclaimed when everything is consumed: the first block is kept
// for reuse while it is at most kKeptArenaBytes, so a writer keeps two (one
// being written, one collecting the next batch, swapped when the first
// empties); larger blocks go to the thread's SpareBlocks (bounded there) for
// the next large frame instead of back to the kernel.
//
// Owns: the arena and every string moved into it; a reference to each
// shared piece.
// Threads: not thread-safe; one owner thread at a time (the connection's
// writer). Views returned by chunk() are valid until the next append or
// consume.
class GatherBuffer {
 public:
  // Strings shorter than this are copied into the arena: a separate chunk
  // costs more than the copy.
  static constexpr size_t kCopyThreshold = 512;
  // Largest arena block grown by reallocation; past it a new block starts.
  static constexpr size_t kArenaBlockBytes = 256 * 1024;
  // Capacity of the first arena block kept across clear().
  static constexpr size_t kKeptArenaBytes = 64 * 1024;

  GatherBuffer() = default;
  ~GatherBuffer();
  GatherBuffer(const GatherBuffer&) = delete;
  GatherBuffer& operator=(const GatherBuffer&) = delete;
  GatherBuffer(GatherBuffer&&) noexcept = default;
  GatherBuffer& operator=(GatherBuffer&&) noexcept = default;

  // Extends the arena by `bytes` and returns where to write them. The pointer
  // is valid until the next append.
  char* append_space(size_t bytes);
  // Takes back the last `bytes` of the last append_space() (written bytes
  // that turned out not to be needed: a ZeroCopyOutputStream's BackUp).
  void unappend(size_t bytes);
  // Copies `bytes` into the arena.
  void append_copy(std::string_view bytes);
  // Takes `bytes` by move; large strings become their own chunk.
  void append_owned(std::string&& bytes);
  // Shares `bytes` (kept alive until consumed); small ones are copied. For
  // bytes that may have to be written again elsewhere (a retried call).
  void append_shared(std::shared_ptr<const std::string> bytes);
  // Shares `bytes`, kept alive by `owner` until consumed; small ones are
  // copied.
  void append_shared(std::shared_ptr<const void> owner, std::string_view bytes);

  // Moves `other`'s unconsumed bytes to the end of this buffer (strings it
  // owns move; arena bytes are copied) and leaves it empty.
  void append(GatherBuffer&& other);

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
  // Exchanges contents without allocating or copying.
  void swap(GatherBuffer& other) noexcept;

 private:
  enum class Source : uint8_t { kArena, kOwned, kShared };
  struct Chunk {
    Source source;
    uint32_t index;  // Into arena_, owned_ or shared_.
    size_t offset;
    size_t size;
  };

  struct ArenaBlock {
    ByteBlock bytes;
    size_t size = 0;  // Bytes handed out by append_space().
  };
  struct SharedPiece {
    std::shared_ptr<const void> owner;
    const char* data;
    size_t size;
  };

  // Replaces `block` with one of at least `bytes` capacity, keeping its bytes.
  static void grow(ArenaBlock& block, size_t bytes);
  // Gives the arena's large blocks to SpareBlocks; keeps the first block
  // when it is small, emptied.
  void release_arena();

  std::vector<ArenaBlock> arena_;  // Blocks; appends go to the last one.
  // Vectors, not deques: an empty deque allocates, and every connection holds
  // two buffers. A moved std::string keeps its heap bytes, so chunks of
  // owned strings stay put when the vector grows.
  std::vector<std::string> owned_;
  std::vector<SharedPiece> shared_;
  std::vector<Chunk> chunks_;
  size_t first_chunk_ = 0;
  size_t unconsumed_bytes_ = 0;
};

inline void swap(GatherBuffer& a, GatherBuffer& b) noexcept {
  a.swap(b);
}

}  // namespace percore
