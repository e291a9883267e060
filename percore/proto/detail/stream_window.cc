#include <percore/proto/detail/stream_window.h>

#include <limits>

namespace percore {
namespace {

uint64_t saturating_add(uint64_t a, uint64_t b) {
  return b > std::numeric_limits<uint64_t>::max() - a ? std::numeric_limits<uint64_t>::max()
                                                      : a + b;
}

}  // namespace

void StreamWriteWindow::on_written(uint64_t message_bytes) {
  written_ = saturating_add(written_, message_bytes);
}

bool StreamWriteWindow::on_feedback(int64_t consumed_size) {
  if (consumed_size < 0)
    return false;
  uint64_t consumed = static_cast<uint64_t>(consumed_size);
  if (consumed > written_)
    consumed = written_;
  if (consumed <= acknowledged_)
    return false;
  const bool was_writable = can_write();
  acknowledged_ = consumed;
  return !was_writable && can_write();
}

void StreamReadProgress::set_peer_needs_feedback(bool needs) {
  if (!needs)
    feedback_due_ = false;
  else if (!peer_needs_feedback_ && consumed_ > 0)
    feedback_due_ = true;  // What was consumed before is owed now.
  peer_needs_feedback_ = needs;
}

void StreamReadProgress::on_consumed(uint64_t message_bytes) {
  if (message_bytes == 0)
    return;
  consumed_ = saturating_add(consumed_, message_bytes);
  if (peer_needs_feedback_)
    feedback_due_ = true;
}

int64_t StreamReadProgress::take_feedback() {
  feedback_due_ = false;
  constexpr uint64_t kMax = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
  return static_cast<int64_t>(consumed_ < kMax ? consumed_ : kMax);
}

}  // namespace percore
