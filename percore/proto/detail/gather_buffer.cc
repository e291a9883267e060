#include <percore/proto/detail/gather_buffer.h>

#include <algorithm>
#include <cstring>

#include <percore/proto/detail/assert.h>

namespace percore {

char* GatherBuffer::append_space(size_t bytes) {
  if (arena_.empty())
    arena_.emplace_back();
  std::string* block = &arena_.back();
  size_t offset = block->size();
  if (bytes == 0)
    return block->data() + offset;
  if (offset > 0 && offset + bytes > block->capacity() && offset + bytes > kArenaBlockBytes) {
    // A new block instead of a reallocation that would copy this one.
    block = &arena_.emplace_back();
    block->reserve(std::max(bytes, kArenaBlockBytes));
    offset = 0;
  }
  // resize() value-initializes; the bytes are overwritten by the caller at
  // once, and the first block keeps its capacity across clear(), so this is
  // cheap.
  block->resize(offset + bytes);
  const auto index = static_cast<uint32_t>(arena_.size() - 1);
  if (!chunks_.empty() && chunks_.back().source == Source::kArena &&
      chunks_.back().index == index && chunks_.back().offset + chunks_.back().size == offset) {
    chunks_.back().size += bytes;
  } else {
    chunks_.push_back(Chunk{Source::kArena, index, offset, bytes});
  }
  unconsumed_bytes_ += bytes;
  return block->data() + offset;
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
  if (bytes == nullptr || bytes->empty())
    return;
  if (bytes->size() < kCopyThreshold) {
    append_copy(*bytes);
    return;
  }
  const size_t size = bytes->size();
  shared_.push_back(std::move(bytes));
  chunks_.push_back(Chunk{Source::kShared, static_cast<uint32_t>(shared_.size() - 1), 0, size});
  unconsumed_bytes_ += size;
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
               chunk.size == other.shared_[chunk.index]->size()) {
      append_shared(std::move(other.shared_[chunk.index]));
    } else {
      append_copy(other.chunk(i - other.first_chunk_));
    }
  }
  other.clear();
}

std::string_view GatherBuffer::chunk(size_t index) const {
  const Chunk& chunk = chunks_[first_chunk_ + index];
  const std::string& source = chunk.source == Source::kArena   ? arena_[chunk.index]
                              : chunk.source == Source::kOwned ? owned_[chunk.index]
                                                               : *shared_[chunk.index];
  return std::string_view(source.data() + chunk.offset, chunk.size);
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

void GatherBuffer::clear() {
  if (!arena_.empty()) {
    arena_.resize(1);
    if (arena_.front().capacity() > kKeptArenaBytes) {
      std::string().swap(arena_.front());
    } else {
      arena_.front().clear();
    }
  }
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
