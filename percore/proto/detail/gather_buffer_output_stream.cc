#include <percore/proto/detail/gather_buffer_output_stream.h>

#include <string_view>

namespace percore {

bool GatherBufferOutputStream::Next(void** data, int* size) {
  *data = out_.append_space(kNextBytes);
  *size = kNextBytes;
  bytes_ += kNextBytes;
  return true;
}

void GatherBufferOutputStream::BackUp(int count) {
  out_.unappend(static_cast<size_t>(count));
  bytes_ -= count;
}

bool GatherBufferOutputStream::WriteAliasedRaw(const void* data, int size) {
  out_.append_shared(owner_, std::string_view(static_cast<const char*>(data),
                                              static_cast<size_t>(size)));
  bytes_ += size;
  return true;
}

}  // namespace percore
