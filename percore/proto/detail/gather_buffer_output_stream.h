#pragma once

#include <google/protobuf/io/zero_copy_stream.h>

#include <cstdint>
#include <memory>

#include <percore/proto/detail/gather_buffer.h>

namespace percore {

// Protobuf's ZeroCopyOutputStream over a GatherBuffer, for serializing with
// aliasing (CodedOutputStream::EnableAliasing): the message's small fields
// are written into the buffer's arena, and each string or bytes field too
// long for the space at hand is referenced where the message holds it,
// kept alive by `owner`, instead of copied. The message must then stay
// alive and unchanged until the buffer has consumed those bytes, which is
// what `owner` is for.
//
// Owns: a reference to `owner`, handed to each referenced piece.
// Threads: the GatherBuffer's owner thread, while it appends nothing else.
class GatherBufferOutputStream final : public google::protobuf::io::ZeroCopyOutputStream {
 public:
  // Arena space handed out by each Next().
  static constexpr int kNextBytes = 4096;

  GatherBufferOutputStream(GatherBuffer& out, std::shared_ptr<const void> owner)
      : out_(out), owner_(std::move(owner)) {}

  bool Next(void** data, int* size) override;
  void BackUp(int count) override;
  int64_t ByteCount() const override { return bytes_; }
  bool AllowsAliasing() const override { return true; }
  bool WriteAliasedRaw(const void* data, int size) override;

 private:
  GatherBuffer& out_;
  std::shared_ptr<const void> owner_;
  int64_t bytes_ = 0;
};

}  // namespace percore
