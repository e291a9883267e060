#include <percore/client_proxy/detail/event_notifier.h>

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>

#include <percore/proto/detail/assert.h>

namespace percore::detail {

EventNotifier::EventNotifier() : fd_(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {
  PERCORE_ASSERT(fd_ >= 0);
}

EventNotifier::~EventNotifier() {
  ::close(fd_);
}

void EventNotifier::notify() {
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (!parked_.load(std::memory_order_relaxed))
    return;
  if (!parked_.exchange(false, std::memory_order_acq_rel))
    return;  // Another producer did it.
  signalled_.fetch_add(1, std::memory_order_relaxed);
  const uint64_t one = 1;
  ssize_t written;
  do {
    written = ::write(fd_, &one, sizeof(one));
  } while (written < 0 && errno == EINTR);
}

void EventNotifier::prepare_to_park() {
  parked_.store(true, std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_seq_cst);
}

void EventNotifier::cancel_park() {
  parked_.store(false, std::memory_order_relaxed);
}

void EventNotifier::consume() {
  parked_.store(false, std::memory_order_relaxed);
  // One read takes the whole counter (not EFD_SEMAPHORE): a second read
  // would only return EAGAIN.
  uint64_t count;
  ssize_t got;
  do {
    got = ::read(fd_, &count, sizeof(count));
  } while (got < 0 && errno == EINTR);
}

}  // namespace percore::detail
