#include <percore/proto/detail/spare_blocks.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <utility>

namespace percore {
namespace {

struct ThreadCache {
  std::array<ByteBlock, SpareBlocks::kMaxBlocks> blocks;
  size_t count = 0;
  size_t bytes = 0;
};

// Trivially destructible, so that a block given back while the thread's
// other thread_local objects are being destroyed finds it still usable; the
// blocks are freed by ThreadCacheOwner's destructor, after which `exited`
// makes give() free instead of keep.
struct ThreadState {
  ThreadCache* cache = nullptr;
  bool exited = false;
};
thread_local ThreadState state;

// Bytes kept by all threads' caches (kMaxBytesPerProcess).
std::atomic<size_t> process_bytes{0};

// Counts `bytes` more kept in the process, unless that would pass the bound.
bool reserve_process_bytes(size_t bytes) {
  size_t kept = process_bytes.load(std::memory_order_relaxed);
  do {
    if (kept + bytes > SpareBlocks::kMaxBytesPerProcess)
      return false;
  } while (!process_bytes.compare_exchange_weak(kept, kept + bytes, std::memory_order_relaxed));
  return true;
}

void release_process_bytes(size_t bytes) {
  process_bytes.fetch_sub(bytes, std::memory_order_relaxed);
}

struct ThreadCacheOwner {
  ThreadCache cache;
  ThreadCacheOwner() { state.cache = &cache; }
  ~ThreadCacheOwner() {
    release_process_bytes(cache.bytes);
    state.cache = nullptr;
    state.exited = true;
  }
};

ThreadCache* cache() {
  if (state.exited)
    return nullptr;
  thread_local ThreadCacheOwner owner;
  return state.cache;
}

}  // namespace

ByteBlock SpareBlocks::take(size_t bytes) {
  ThreadCache* kept = bytes >= kMinBlockBytes ? cache() : nullptr;
  if (kept != nullptr && kept->count > 0) {
    size_t best = kept->count;
    for (size_t i = 0; i < kept->count; ++i) {
      if (kept->blocks[i].capacity >= bytes &&
          (best == kept->count || kept->blocks[i].capacity < kept->blocks[best].capacity)) {
        best = i;
      }
    }
    if (best != kept->count) {
      ByteBlock block = std::move(kept->blocks[best]);
      kept->bytes -= block.capacity;
      release_process_bytes(block.capacity);
      --kept->count;
      if (best != kept->count)
        kept->blocks[best] = std::move(kept->blocks[kept->count]);
      return block;
    }
  }
  // new char[] leaves the bytes uninitialized (make_unique<char[]> would
  // zero them).
  return ByteBlock{std::unique_ptr<char[]>(new char[bytes]), bytes};
}

void SpareBlocks::give(ByteBlock&& block) {
  if (block.data == nullptr || block.capacity < kMinBlockBytes ||
      block.capacity > kMaxBytesPerThread) {
    return;
  }
  ThreadCache* kept = cache();
  if (kept == nullptr)
    return;
  if (kept->count == kMaxBlocks || kept->bytes + block.capacity > kMaxBytesPerThread) {
    // Full: keep the larger of this block and the cache's smallest one.
    size_t smallest = 0;
    for (size_t i = 1; i < kept->count; ++i) {
      if (kept->blocks[i].capacity < kept->blocks[smallest].capacity)
        smallest = i;
    }
    if (kept->count == 0 || kept->blocks[smallest].capacity >= block.capacity ||
        kept->bytes - kept->blocks[smallest].capacity + block.capacity > kMaxBytesPerThread ||
        !reserve_process_bytes(block.capacity - kept->blocks[smallest].capacity)) {
      return;
    }
    kept->bytes -= kept->blocks[smallest].capacity;
    kept->bytes += block.capacity;
    kept->blocks[smallest] = std::move(block);
    return;
  }
  if (!reserve_process_bytes(block.capacity))
    return;
  kept->bytes += block.capacity;
  kept->blocks[kept->count++] = std::move(block);
}

std::shared_ptr<const char[]> SpareBlocks::take_shared(size_t bytes, char** data) {
  struct GiveBack {
    size_t capacity;
    void operator()(const char* bytes) const {
      give(ByteBlock{std::unique_ptr<char[]>(const_cast<char*>(bytes)), capacity});
    }
  };
  ByteBlock block = take(bytes);
  *data = block.data.get();
  std::unique_ptr<const char[], GiveBack> owned(block.data.release(), GiveBack{block.capacity});
  return std::shared_ptr<const char[]>(std::move(owned));
}

void SpareBlocks::trim() {
  ThreadCache* kept = cache();
  if (kept == nullptr)
    return;
  for (size_t i = 0; i < kept->count; ++i)
    kept->blocks[i] = ByteBlock{};
  release_process_bytes(kept->bytes);
  kept->count = 0;
  kept->bytes = 0;
}

size_t SpareBlocks::kept_bytes_in_process() {
  return process_bytes.load(std::memory_order_relaxed);
}

size_t SpareBlocks::kept_blocks() {
  ThreadCache* kept = cache();
  return kept == nullptr ? 0 : kept->count;
}

size_t SpareBlocks::kept_bytes() {
  ThreadCache* kept = cache();
  return kept == nullptr ? 0 : kept->bytes;
}

}  // namespace percore
