#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>

#include "proto/frame_decoder.h"
#include "server_io/detail/answer_counters.h"
#include "server_io/detail/service_table.h"
#include "server_io/server.h"

namespace percore::detail {

class WorkerPool;

// What every part of one server shares: options, the service table, the
// worker pool and the server-wide counters and flags. Immutable after start
// except for the atomics.
//
// Owns: the service table and the worker pool. Threads: any, after start.
struct ServerCore {
  explicit ServerCore(ServerOptions server_options);
  ~ServerCore();

  void count_rejected(DecodeStatus status);

  ServerOptions options;
  ServiceTable services;
  std::unique_ptr<WorkerPool> workers;

  // Set once by Stop(): new requests are answered 2003.
  std::atomic<bool> stopping{false};
  // Calls dispatched to a handler and not yet answered, over all threads.
  std::atomic<int64_t> unanswered_calls{0};

  AnswerCounters answers;  // Every answer the server sent, by code.
  std::atomic<uint64_t> connections_accepted{0};
  std::atomic<uint64_t> connections_closed{0};
  std::atomic<uint64_t> replies_dropped{0};
  // Indexed by DecodeStatus.
  std::array<std::atomic<uint64_t>, 16> rejected_frames{};
};

}  // namespace percore::detail
