#pragma once

#include <chrono>
#include <cstdint>

namespace percore {

// What a call passes on to the calls it makes (gRPC's context propagation,
// brpc's trace): its deadline, log id and trace. A server handler gets one
// from ServerController::downstream_context(); a client call takes it with
// Controller::inherit(), so a chain of calls ends by its first caller's
// deadline and every stage's spans share one trace.
//
// The fields follow brpc's RpcRequestMeta (docs/PROTOCOL.md): log_id = 3,
// trace_id = 4, span_id = 5, parent_span_id = 6, and the deadline, which
// travels as timeout_ms = 8 (the time left, in whole milliseconds, when the
// request is written). 0 means "absent" for every id, as on the wire.
//
// Owns: nothing (a plain value). Threads: any; copy it freely.
struct CallContext {
  using Clock = std::chrono::steady_clock;

  // When the incoming call's client stops waiting (its timeout_ms after the
  // server read the request); Clock::time_point::max(): no deadline.
  Clock::time_point deadline = Clock::time_point::max();
  // The incoming call's log id (RpcRequestMeta.log_id); passed on unchanged.
  int64_t log_id = 0;
  // The incoming call's trace (RpcRequestMeta.trace_id); 0: not traced, and
  // the downstream call is not traced either.
  int64_t trace_id = 0;
  // The incoming call's span (RpcRequestMeta.span_id): the parent of the
  // spans of the calls made on its behalf.
  int64_t span_id = 0;
  // The incoming call's parent span (RpcRequestMeta.parent_span_id), for
  // logs; not passed on.
  int64_t parent_span_id = 0;

  bool has_deadline() const { return deadline != Clock::time_point::max(); }

  // The time left before `deadline`, as a timeout_ms for a downstream call:
  // -1 when there is no deadline; else whole milliseconds, rounded down so
  // that the downstream deadline never falls after this one, at most
  // INT32_MAX. 0 when less than 1 ms is left: the deadline counts as passed
  // (a call given 0 fails at once with 1008).
  int32_t remaining_timeout_ms(Clock::time_point now = Clock::now()) const;
};

// A fresh span id for a call: random, positive, never 0 (0 means "no
// span"). Any thread (a generator per thread, no lock).
int64_t new_span_id();

}  // namespace percore
