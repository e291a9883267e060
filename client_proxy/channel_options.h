#pragma once

#include <cstddef>
#include <cstdint>

#include "proto/frame.h"

namespace percore {

// How an asynchronous call's `done` closure is run. (A call with
// done == nullptr is synchronous whatever this says.)
enum class CompletionMode {
  // On the group's callback thread(s), handed over through a lock-free queue:
  // the I/O threads never run user code. The default.
  kQueuedCallback,
  // Right on the thread that completes the call: the receive thread for a
  // reply, the send thread for a timeout or a failure. Cheapest; the callback
  // must be short, must not block and must not make a synchronous call.
  kInlineCallback,
};

enum class LoadBalancer {
  // Two random ready connections, the one with fewer calls outstanding.
  kPowerOfTwoChoices,
  kRoundRobin,
};

// Options of a Channel. Each field: meaning, default, limits.
struct ChannelOptions {
  // Thread groups (each: a send thread, a receive thread, callback threads and
  // its own connections). Default 0: one per core. 1..256.
  int groups = 0;
  // Connections from each group to each server. Default 1; 1..64.
  int connections_per_server = 1;
  // Calls in flight per group; past it a call fails at once with 1011
  // (overcrowded). Default 4096; 1..1<<20.
  int max_inflight_per_group = 4096;
  // Default deadline of a call, unless its Controller sets one. Default
  // 1000 ms; -1 means no deadline.
  int timeout_ms = 1000;
  // How long a connection attempt may take. Default 500 ms; at least 1.
  int connect_timeout_ms = 500;
  // Back-off before reconnecting a failed connection: starts at
  // backoff_initial_ms, doubles per failure, capped at backoff_max_ms, with
  // +-25% jitter. Defaults 100 ms and 2000 ms.
  int backoff_initial_ms = 100;
  int backoff_max_ms = 2000;
  // Retries of a call that was written but whose connection broke, unless its
  // Controller sets max_retry. Default 0: percore cannot know a method is
  // idempotent. (Calls never written, and calls answered 2003, are always
  // retried on another server within the deadline.)
  int max_retry = 0;
  CompletionMode completion = CompletionMode::kQueuedCallback;
  LoadBalancer load_balancer = LoadBalancer::kPowerOfTwoChoices;
  // Callback threads per group for kQueuedCallback. Default 1; 1..64.
  int callback_threads = 1;
  // Largest request body sent and response body accepted. A larger request
  // fails at once with 1003 before anything is sent. Default 64 MiB.
  size_t max_body_bytes = kDefaultMaxBodyBytes;
  // Deterministic subsetting: each group connects to `subset_size` servers
  // chosen by the SRE book's algorithm (sort, shuffle per round with a fixed
  // PRNG, slice), so that connections per server stay even across groups and
  // client processes. A group whose whole subset is down uses any server
  // until one of its subset is back. Default 0: every group connects to
  // every server.
  int subset_size = 0;
  // This client's id for subsetting; group g of client c has subsetting id
  // c * groups + g. Give client processes consecutive ids (0, 1, 2...) for
  // exactly even connections. Default -1: derived from the process id and a
  // random number (even on average).
  int64_t client_id = -1;
  // How long Init() waits for a registry (zk://: the ZooKeeper session and
  // the first list). Default 5000 ms.
  int naming_timeout_ms = 5000;
  // ZooKeeper session timeout for zk:// targets. Default 10000 ms.
  int zookeeper_session_timeout_ms = 10000;
  // How long a parking thread (send thread, synchronous caller) polls before
  // it sleeps, in microseconds. Default 0 (sleep at once); at most 1000.
  int spin_us = 0;
};

}  // namespace percore
