#pragma once

#include <cstddef>
#include <memory>

namespace percore {

// A byte block whose bytes are left uninitialized: whoever takes one writes
// every byte before it is read, so nothing is zero-filled first.
struct ByteBlock {
  std::unique_ptr<char[]> data;
  size_t capacity = 0;
};

// Large byte blocks kept by each thread for its next large frame.
//
// Why: a block of a megabyte or more goes back to the kernel when freed
// (glibc gives large chunks back by munmap or by trimming the arena), so the
// next large message of the same size pays a page fault and a cleared page
// for every 4 KiB of it, before any byte is written: 18% of a server's CPU
// on 1 MiB echoes. brpc keeps its IOBuf blocks in a per-thread cache for the
// same reason.
//
// Bound: each thread keeps at most kMaxBlocks blocks and kMaxBytesPerThread
// bytes, and all threads together at most kMaxBytesPerProcess (so an
// application with many threads that send large requests keeps no more
// than that idle); a block over kMaxBytesPerThread is never kept, and
// blocks under kMinBlockBytes are not worth keeping (the allocator's own
// bins serve them without the kernel). Blocks are freed when their thread
// exits.
//
// Threads: each thread has its own cache; a block taken on one thread may
// be given back on another (it joins that thread's cache).
class SpareBlocks {
 public:
  static constexpr size_t kMinBlockBytes = 64 * 1024;
  static constexpr size_t kMaxBlocks = 8;
  static constexpr size_t kMaxBytesPerThread = 8 * 1024 * 1024;
  static constexpr size_t kMaxBytesPerProcess = 32 * 1024 * 1024;

  // A block of at least `bytes`: a kept one when this thread has one large
  // enough (the smallest such), else a fresh allocation of exactly `bytes`.
  static ByteBlock take(size_t bytes);
  // Gives `block` back: kept when it is large enough and fits the bound,
  // freed otherwise.
  static void give(ByteBlock&& block);
  // Shared, read-only bytes over a block of at least `bytes`, given back to
  // the cache of the thread that drops the last reference. `*data` is where
  // the caller writes them, before sharing the pointer.
  static std::shared_ptr<const char[]> take_shared(size_t bytes, char** data);

  // Frees this thread's kept blocks (after a burst of large messages).
  static void trim();

  // This thread's kept blocks and their bytes (for tests).
  static size_t kept_blocks();
  static size_t kept_bytes();
  // Bytes kept by all threads.
  static size_t kept_bytes_in_process();
};

}  // namespace percore
