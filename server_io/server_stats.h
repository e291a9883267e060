#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "proto/frame_decoder.h"

namespace percore {

// A snapshot of one method's counters (Server::stats()).
struct MethodStats {
  uint64_t calls = 0;  // Calls answered, whatever the outcome.
  // Answers by error code (0 = OK), only codes that occurred.
  std::map<int32_t, uint64_t> answers_by_code;
  uint64_t total_latency_us = 0;  // Summed from request received to reply queued.
  uint64_t max_latency_us = 0;

  uint64_t errors() const;
  double average_latency_us() const;
};

// A snapshot of a whole server's counters.
struct ServerStats {
  // Keyed by full method name, e.g. "example.EchoService.Echo".
  std::map<std::string, MethodStats> methods;
  // Answers by code over all methods, including requests that named no known
  // method (1001, 1002) and those turned away while stopping (2003).
  std::map<int32_t, uint64_t> answers_by_code;
  uint64_t connections_accepted = 0;
  uint64_t connections_closed = 0;
  // Connections closed because of a malformed frame, by reason.
  std::map<DecodeStatus, uint64_t> rejected_frames;
  uint64_t rejected_frames_total() const;
  // Replies that were ready but whose connection had already closed.
  uint64_t replies_dropped = 0;
};

}  // namespace percore
