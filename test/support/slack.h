#pragma once

#include <chrono>
#include <cstdlib>

namespace percore::testing {

// Timed assertions multiply their bounds by PERCORE_TEST_SLACK (default 1):
// sanitizer and valgrind runs are several times slower.
inline double time_slack() {
  const char* value = std::getenv("PERCORE_TEST_SLACK");
  const double slack = value != nullptr ? std::atof(value) : 1.0;
  return slack >= 1.0 ? slack : 1.0;
}

inline std::chrono::milliseconds scaled(std::chrono::milliseconds bound) {
  return std::chrono::milliseconds(static_cast<long long>(bound.count() * time_slack()));
}

}  // namespace percore::testing
