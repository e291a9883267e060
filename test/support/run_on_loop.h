#pragma once

#include <future>

#include <percore/client_proxy/detail/event_loop.h>

namespace percore::testing {

// Runs `task` on `loop`'s thread (a posted task) and waits for it.
template <typename Task>
void run_on_loop(detail::EventLoop& loop, Task task) {
  std::promise<void> done;
  loop.post([&] {
    task();
    done.set_value();
  });
  done.get_future().wait();
}

}  // namespace percore::testing
