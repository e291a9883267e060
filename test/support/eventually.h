#pragma once

#include <chrono>
#include <thread>

#include "test/support/slack.h"

namespace percore::testing {

// Polls `condition` every 20 ms until it holds or `timeout` (scaled by the
// slack factor) has passed; returns whether it held. Bounded by design.
template <typename Condition>
bool eventually(Condition condition, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + scaled(timeout);
  while (std::chrono::steady_clock::now() < deadline) {
    if (condition())
      return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return condition();
}

}  // namespace percore::testing
