#include <percore/client_proxy/detail/event_loop.h>

#include <sys/epoll.h>
#include <unistd.h>

#include <algorithm>
#include <thread>

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
  owner_ = &owner;
  role_.store(Role::kRunning, std::memory_order_relaxed);
  while (!stopped_) {
    bool worked;
    Clock::time_point next_timer;
    {
      // Calls made by this turn's work (inline callbacks) are written
      // together at its end.
      BatchScope batch(batch_for_);
      worked = run_tasks();
      if (stopped_)
        break;
      worked |= owner.on_turn();
      // Every turn: a deadline added this turn may be due soonest.
      next_timer = owner.on_timers(Clock::now());
    }
    if (!worked)
      park(owner, next_timer);
  }
  role_.store(Role::kNotRunning, std::memory_order_release);
  current_ = nullptr;
}

void EventLoop::run_turn_here_or_wake() {
  if (batch_loop_ == this) {
    batch_held_ = true;
    return;
  }
  if (never_lend_) {
    notifier_.notify();
    return;
  }
  lend_or_wake_now();
}

EventLoop::BatchScope::BatchScope(EventLoop* loop) {
  if (loop == nullptr || batch_loop_ != nullptr)
    return;
  outermost_ = true;
  batch_loop_ = loop;
}

EventLoop::BatchScope::~BatchScope() {
  if (!outermost_)
    return;
  EventLoop* loop = batch_loop_;
  batch_loop_ = nullptr;  // A lent turn's own calls are not held back.
  if (batch_held_) {
    batch_held_ = false;
    loop->lend_or_wake_now();
  }
}

void EventLoop::lend_or_wake_now() {
  Role expected = Role::kParked;
  if (lent_ != nullptr || current_ == this || role_.load(std::memory_order_relaxed) != expected ||
      !role_.compare_exchange_strong(expected, Role::kLent, std::memory_order_acquire,
                                     std::memory_order_relaxed)) {
    notifier_.notify();
    return;
  }
  // Tasks posted before this work must run before it (a Channel's route
  // before its first call): they are the loop thread's.
  if (!owner_->lends_turns() || queued_tasks_.load(std::memory_order_acquire) > 0) {
    role_.store(Role::kParked, std::memory_order_release);
    notifier_.notify();
    return;
  }
  lent_ = this;
  owner_->on_turn();
  // Tasks posted meanwhile are the loop thread's (run_tasks() runs none in
  // a lent turn); they, a stop, or a timer due before the parked loop's
  // timeout need the loop thread awake.
  const bool must_wake = stopped_ || owner_->next_timer() < parked_until_ ||
                         queued_tasks_.load(std::memory_order_acquire) > 0;
  lent_ = nullptr;
  lent_turns_.fetch_add(1, std::memory_order_relaxed);
  role_.store(Role::kParked, std::memory_order_release);
  if (must_wake)
    notifier_.notify();
}

void EventLoop::take_back_role() {
  assert_in_loop_thread();
  for (int tries = 0;; ++tries) {
    Role expected = Role::kParked;
    if (role_.compare_exchange_weak(expected, Role::kRunning, std::memory_order_acquire,
                                    std::memory_order_relaxed)) {
      return;
    }
    // A lent turn is one batch of writes: spin briefly, then let its
    // thread run (it may share this CPU).
    if (tries > 64)
      std::this_thread::yield();
  }
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
  if (lent_ == this)
    return false;
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
  parked_until_ = next_timer;
  role_.store(Role::kParked, std::memory_order_release);
  const int count = ::epoll_wait(epoll_fd_, events, kMaxEvents, timeout_ms);
  take_back_role();
  notifier_.cancel_park();
  BatchScope batch(batch_for_);  // Calls the events' callbacks make, written together.
  for (int i = 0; i < count; ++i) {
    if (events[i].data.u64 == kNotifierTag) {
      notifier_.consume();
    } else {
      owner.on_event(events[i].data.u64, events[i].events);
    }
  }
}

}  // namespace percore::detail
