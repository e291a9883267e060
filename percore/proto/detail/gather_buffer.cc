#include <percore/proto/detail/gather_buffer.h>

#include <algorithm>
#include <cstring>
#include <utility>

#include <percore/proto/detail/assert.h>

namespace percore {

GatherBuffer::~GatherBuffer() {
  release_arena();
}

void GatherBuffer::grow(ArenaBlock& block, size_t bytes) {
  // Doubling, as std::string grows, so that many small appends cost few
  // reallocations.
  constexpr size_t kFirstBlockBytes = 512;
  ByteBlock larger =
      SpareBlocks::take(std::max({bytes, 2 * block.bytes.capacity, kFirstBlockBytes}));
  if (block.size > 0)
    std::memcpy(larger.data.get(), block.bytes.data.get(), block.size);
  SpareBlocks::give(std::exchange(block.bytes, std::move(larger)));
}

char* GatherBuffer::append_space(size_t bytes) {
  if (arena_.empty())
    arena_.emplace_back();
  ArenaBlock* block = &arena_.back();
  size_t offset = block->size;
  if (offset + bytes > block->bytes.capacity) {
    if (offset > 0 && offset + bytes > kArenaBlockBytes) {
      // A new block instead of a reallocation that would copy this one.
      block = &arena_.emplace_back();
      block->bytes = SpareBlocks::take(std::max(bytes, kArenaBlockBytes));
      offset = 0;
    } else {
      grow(*block, offset + bytes);
    }
  }
  char* space = block->bytes.data.get() + offset;
  if (bytes == 0)
    return space;
  block->size = offset + bytes;
  const auto index = static_cast<uint32_t>(arena_.size() - 1);
  if (!chunks_.empty() && chunks_.back().source == Source::kArena &&
      chunks_.back().index == index && chunks_.back().offset + chunks_.back().size == offset) {
    chunks_.back().size += bytes;
  } else {
    chunks_.push_back(Chunk{Source::kArena, index, offset, bytes});
  }
  unconsumed_bytes_ += bytes;
  return space;
}

void GatherBuffer::unappend(size_t bytes) {
  if (bytes == 0)
    return;
  PERCORE_ASSERT(!chunks_.empty() && chunks_.size() > first_chunk_);
  Chunk& last = chunks_.back();
  PERCORE_ASSERT(last.source == Source::kArena && last.index == arena_.size() - 1 &&
                 last.size >= bytes && last.offset + last.size == arena_.back().size);
  last.size -= bytes;
  arena_.back().size -= bytes;
  unconsumed_bytes_ -= bytes;
  if (last.size == 0)
    chunks_.pop_back();
}

void GatherBuffer::append_copy(std::string_view bytes) {
  if (bytes.empty())
    return;
  std::memcpy(append_space(bytes.size()), bytes.data(), bytes.size());
}

void GatherBuffer::append_owned(std::string&& bytes) {
  if (bytes.size() < kCopyThreshold) {
    append_copy(bytes);
    return;
  }
  owned_.push_back(std::move(bytes));
  chunks_.push_back(
      Chunk{Source::kOwned, static_cast<uint32_t>(owned_.size() - 1), 0, owned_.back().size()});
  unconsumed_bytes_ += owned_.back().size();
}

void GatherBuffer::append_shared(std::shared_ptr<const std::string> bytes) {
  if (bytes == nullptr)
    return;
  const std::string_view view = *bytes;
  append_shared(std::move(bytes), view);
}

void GatherBuffer::append_shared(std::shared_ptr<const void> owner, std::string_view bytes) {
  if (bytes.empty())
    return;
  if (bytes.size() < kCopyThreshold) {
    append_copy(bytes);
    return;
  }
  shared_.push_back(SharedPiece{std::move(owner), bytes.data(), bytes.size()});
  chunks_.push_back(
      Chunk{Source::kShared, static_cast<uint32_t>(shared_.size() - 1), 0, bytes.size()});
  unconsumed_bytes_ += bytes.size();
}

void GatherBuffer::append(GatherBuffer&& other) {
  if (other.empty())
    return;
  if (empty()) {
    swap(other);
    other.clear();
    return;
  }
  for (size_t i = other.first_chunk_; i < other.chunks_.size(); ++i) {
    const Chunk& chunk = other.chunks_[i];
    if (chunk.source == Source::kOwned && chunk.offset == 0 &&
        chunk.size == other.owned_[chunk.index].size()) {
      append_owned(std::move(other.owned_[chunk.index]));
    } else if (chunk.source == Source::kShared && chunk.offset == 0 &&
               chunk.size == other.shared_[chunk.index].size) {
      SharedPiece& piece = other.shared_[chunk.index];
      append_shared(std::move(piece.owner), std::string_view(piece.data, piece.size));
    } else {
      append_copy(other.chunk(i - other.first_chunk_));
    }
  }
  other.clear();
}

std::string_view GatherBuffer::chunk(size_t index) const {
  const Chunk& chunk = chunks_[first_chunk_ + index];
  const char* source = chunk.source == Source::kArena   ? arena_[chunk.index].bytes.data.get()
                       : chunk.source == Source::kOwned ? owned_[chunk.index].data()
                                                        : shared_[chunk.index].data;
  return std::string_view(source + chunk.offset, chunk.size);
}

int GatherBuffer::fill_iovecs(iovec* vecs, int max_vecs) const {
  const int count = static_cast<int>(std::min<size_t>(chunk_count(), max_vecs));
  for (int i = 0; i < count; ++i) {
    const std::string_view bytes = chunk(i);
    vecs[i].iov_base = const_cast<char*>(bytes.data());
    vecs[i].iov_len = bytes.size();
  }
  return count;
}

void GatherBuffer::consume(size_t bytes) {
  PERCORE_ASSERT(bytes <= unconsumed_bytes_);
  if (bytes == unconsumed_bytes_) {
    clear();  // The usual case: a write took everything.
    return;
  }
  unconsumed_bytes_ -= bytes;
  while (bytes > 0) {
    Chunk& chunk = chunks_[first_chunk_];
    const size_t taken = std::min(bytes, chunk.size);
    chunk.offset += taken;
    chunk.size -= taken;
    bytes -= taken;
    if (chunk.size == 0)
      ++first_chunk_;
  }
  if (unconsumed_bytes_ == 0)
    clear();
}

void GatherBuffer::release_arena() {
  if (arena_.empty())
    return;
  for (size_t i = 1; i < arena_.size(); ++i)
    SpareBlocks::give(std::move(arena_[i].bytes));
  arena_.resize(1);
  ArenaBlock& first = arena_.front();
  if (first.bytes.capacity > kKeptArenaBytes)
    SpareBlocks::give(std::exchange(first.bytes, ByteBlock{}));
  first.size = 0;
}

void GatherBuffer::clear() {
  release_arena();
  owned_.clear();
  shared_.clear();
  chunks_.clear();
  first_chunk_ = 0;
  unconsumed_bytes_ = 0;
}

void GatherBuffer::swap(GatherBuffer& other) noexcept {
  arena_.swap(other.arena_);
  owned_.swap(other.owned_);
  shared_.swap(other.shared_);
  chunks_.swap(other.chunks_);
  std::swap(first_chunk_, other.first_chunk_);
  std::swap(unconsumed_bytes_, other.unconsumed_bytes_);
}

}  // namespace percore
