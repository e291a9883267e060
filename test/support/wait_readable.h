#pragma once

#include <poll.h>

#include <cerrno>
#include <chrono>

namespace percore::testing {

// Waits until `fd` is readable (data, EOF or an error to read) or `deadline`
// passes; retries after signals. True if readable.
inline bool wait_readable(int fd, std::chrono::steady_clock::time_point deadline) {
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0)
      return false;
    pollfd poll_fd{fd, POLLIN, 0};
    const int ready = ::poll(&poll_fd, 1, static_cast<int>(left.count()));
    if (ready < 0 && errno == EINTR)
      continue;
    return ready > 0;
  }
}

}  // namespace percore::testing
