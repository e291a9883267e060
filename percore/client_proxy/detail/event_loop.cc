#include <percore/client_proxy/detail/event_loop.h>

#include <sys/epoll.h>
#include <unistd.h>

#include <algorithm>

#include <percore/proto/detail/assert.h>

namespace percore::detail {
namespace {

constexpr uint64_t kNotifierTag = 0;
constexpr int kMaxEvents = 64;

}  // namespace

EventLoop::EventLoop(int spin_us) : spin_us_(spin_us), epoll_fd_(::epoll_create1(EPOLL_CLOEXEC)) {
  PERCORE_ASSERT(epoll_fd_ >= 0);
  epoll_event event{};
  event.events = EPOLLIN;
  event.data.u64 = kNotifierTag;
  ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, notifier_.fd(), &event);
}

EventLoop::~EventLoop() {
  ::close(epoll_fd_);
}

void EventLoop::run(Owner& owner) {
  current_ = this;
  while (!stopped_) {
    bool worked = run_tasks();
    if (stopped_)
      break;
    worked |= owner.on_turn();
    // Every turn: a deadline added this turn may be due soonest.
    const Clock::time_point next_timer = owner.on_timers(Clock::now());
    if (!worked)
      park(owner, next_timer);
  }
  current_ = nullptr;
}

void EventLoop::stop() {
  assert_in_loop_thread();
  stopped_ = true;
}

void EventLoop::post(Task task) {
  tasks_.enqueue(std::move(task));
  // After the enqueue: a loop that sees the count finds the task.
  queued_tasks_.fetch_add(1, std::memory_order_release);
  notifier_.notify();
}

bool EventLoop::run_tasks() {
  assert_in_loop_thread();
  if (queued_tasks_.load(std::memory_order_acquire) == 0)
    return false;
  Task task;
  bool any = false;
  while (!stopped_ && tasks_.try_dequeue(task)) {
    queued_tasks_.fetch_sub(1, std::memory_order_relaxed);
    any = true;
    task();
  }
  return any;
}

void EventLoop::watch(int fd, uint32_t events, uint64_t tag) {
  assert_in_loop_thread();
  PERCORE_ASSERT(tag != kNotifierTag);
  epoll_event event{};
  event.events = events;
  event.data.u64 = tag;
  ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &event);
}

void EventLoop::unwatch(int fd) {
  assert_in_loop_thread();
  ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
}

void EventLoop::park(Owner& owner, Clock::time_point next_timer) {
  if (spin_us_ > 0) {
    const Clock::time_point spin_until = Clock::now() + std::chrono::microseconds(spin_us_);
    while (Clock::now() < spin_until) {
      if (queued_tasks_.load(std::memory_order_acquire) > 0 || owner.has_work())
        return;
    }
  }
  notifier_.prepare_to_park();
  if (queued_tasks_.load(std::memory_order_acquire) > 0 || owner.has_work()) {
    notifier_.cancel_park();
    return;
  }
  int timeout_ms = -1;
  if (next_timer != Clock::time_point::max()) {
    const auto left =
        std::chrono::ceil<std::chrono::milliseconds>(next_timer - Clock::now()).count();
    timeout_ms = static_cast<int>(std::clamp<int64_t>(left, 0, 60000));
  }
  epoll_event events[kMaxEvents];
  const int count = ::epoll_wait(epoll_fd_, events, kMaxEvents, timeout_ms);
  notifier_.cancel_park();
  for (int i = 0; i < count; ++i) {
    if (events[i].data.u64 == kNotifierTag) {
      notifier_.consume();
    } else {
      owner.on_event(events[i].data.u64, events[i].events);
    }
  }
}

}  // namespace percore::detail
