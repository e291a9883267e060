#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>

#include <percore/base/authenticator.h>
#include <percore/base/tls_options.h>
#include <percore/client_proxy/client_runtime.h>
#include <percore/proto/frame.h>

namespace percore {

// How an asynchronous call's `done` closure is run. (A call with
// done == nullptr is synchronous whatever this says.)
enum class CompletionMode {
  // On the group's callback thread(s), handed over through a lock-free queue:
  // the I/O threads never run user code. The default. The call keeps its
  // place in the group's in-flight count (max_inflight_per_group) until
  // `done` returns, so callbacks that fall behind slow new calls down (1011)
  // instead of piling up.
  kQueuedCallback,
  // Right on the thread that completes the call: the receive thread for a
  // reply, the send thread for a timeout or a failure after the call was
  // queued. The call's place is freed before `done` runs. Cheapest; the
  // callback must be short, must not block, and a synchronous call from it
  // (or from any send or receive thread) fails at once with 35 (EDEADLK):
  // it would wait for the thread it blocks.
  kInlineCallback,
  // In both modes, a call that fails before it is queued (timeout_ms 0,
  // 1011, 1003, 125 while the Channel closes, a Channel not initialized)
  // runs `done` on the calling thread, before CallMethod returns: a caller
  // must not hold a lock there that `done` takes.
};

enum class LoadBalancer {
  // Two random ready connections, the one with fewer calls outstanding.
  kPowerOfTwoChoices,
  kRoundRobin,
};

// Options of a Channel. Each field: meaning, default, limits.
struct ChannelOptions {
  // The thread groups the Channel's calls run on. Null (the default): the
  // process-wide ClientRuntime::Default(), shared by every Channel that does
  // not choose otherwise; or a runtime of the application's, to share groups
  // among some Channels. Ignored with private_groups.
  std::shared_ptr<ClientRuntime> runtime;
  // Set: the Channel starts groups of its own with these options instead
  // (nothing shared with other Channels). Default: unset.
  std::optional<ClientRuntimeOptions> private_groups;
  // Connections from each group to each server. Default 1; 1..64.
  int connections_per_server = 1;
  // Default deadline of a call, in milliseconds, unless its Controller sets
  // one: >= 0 is a deadline (0: every call fails at once with 1008), -1 (or
  // any negative value) means no deadline. brpc's meaning; the Controller's
  // timeout_ms has the same. Default 1000.
  int timeout_ms = 1000;
  // How long a connection attempt may take. Default 500 ms; at least 1.
  int connect_timeout_ms = 500;
  // Back-off before reconnecting to a server whose connect failed (refused,
  // unreachable, timed out), or whose connection broke before any byte came
  // back, or answered 2003: starts at backoff_initial_ms, doubles per
  // failure in a row, capped at backoff_max_ms, with +-25% jitter. Calls
  // meanwhile go to other servers, or end at once with 112 when every
  // server is in back-off. A connection that broke after it had answered is
  // reconnected at once (calls wait for it), and one the server closed with
  // no call on it (an idle close) when the next call needs it. Defaults
  // 100 ms and 2000 ms.
  int backoff_initial_ms = 100;
  int backoff_max_ms = 2000;
  // --- Retries (README, "Retries"). Every send again of a call passes the
  // call's own limit and the group's retry budget, and goes to another
  // server than the one that failed it when there is one. ---
  // Retries of a call that was written but whose connection broke, unless its
  // Controller sets max_retry. Default 0: percore cannot know a method is
  // idempotent. 0..100.
  int max_retry = 0;
  // Sends again of a call that surely did not run: never written before its
  // connection broke, or answered 2003 (server stopping). Past it the call
  // ends with that failure (1009, 2003). Default 3; 0..100.
  int max_resends = 3;
  // The retry budget of this Channel in each group (Finagle's RetryBudget):
  // over the last 10 seconds, sends again (retries and resends) may number
  // at most retry_budget_min_per_second * 10 + retry_budget_percent% of the
  // calls made. Past it a call ends with its failure at once, so a fault
  // that fails every attempt adds at most that share of requests. Defaults
  // 20% and 10 a second; percent 0..1000, min 0..1000000.
  int retry_budget_percent = 20;
  int retry_budget_min_per_second = 10;

  // --- Dead connections: an application-level keepalive (gRPC's
  // keepalive_time / keepalive_timeout). A connection that was sent calls
  // and has received nothing for keepalive_time_ms is sent a health check
  // (grpc.health.v1.Health.Check: a percore server answers it on its I/O
  // thread, any other baidu_std server at least with an error); no byte
  // back within keepalive_timeout_ms and the connection is dead: its calls
  // end with 1009 (or are retried as max_retry allows) and it is closed.
  // Finds what TCP cannot: a host gone without FIN or RST, a partition, a
  // frozen process. A connection found dead also ejects its server (outlier
  // detection). A keepalive_timeout_ms shorter than a busy server's I/O
  // thread may be kept from running takes a slow server for a dead one.
  // Defaults 10000 ms and 5000 ms; keepalive_time_ms <= 0 turns it off; at
  // least 100 ms each. ---
  int keepalive_time_ms = 10000;
  int keepalive_timeout_ms = 5000;

  // --- Outlier detection (Envoy's, with Finagle's probe before
  // readmission): a server with outlier_consecutive_errors errors in a row
  // (calls timing out on it, connections to it broken with calls on them
  // or found dead, with no byte from it in between) is taken out of this
  // group's rotation for outlier_base_ejection_time_ms, doubled on each
  // ejection in a row up to outlier_max_ejection_time_ms; then it is sent
  // a health check (answered within keepalive_timeout_ms: back in
  // rotation; else ejected again). At most outlier_max_ejection_percent of
  // the servers are out at once (at least one, never the last); with
  // subsetting, of the group's subset (fallback servers are not ejected).
  // When no server in rotation can take a call, an ejected one does. Defaults 5,
  // 5000 ms, 300000 ms, 10%; consecutive errors 0 turns it off. ---
  int outlier_consecutive_errors = 5;
  int outlier_base_ejection_time_ms = 5000;
  int outlier_max_ejection_time_ms = 300000;
  int outlier_max_ejection_percent = 10;
  // How this Channel's asynchronous calls run their `done`.
  CompletionMode completion = CompletionMode::kQueuedCallback;
  LoadBalancer load_balancer = LoadBalancer::kPowerOfTwoChoices;
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
  // c * groups + g (groups: the runtime's). Give client processes
  // consecutive ids (0, 1, 2...) for
  // exactly even connections. Default -1: derived from the process id and a
  // random number (even on average).
  int64_t client_id = -1;
  // How long Init() waits for a registry (zk://: the ZooKeeper session and
  // the first list, together). Default 5000 ms; at least 1.
  int naming_timeout_ms = 5000;
  // ZooKeeper session timeout for zk:// targets: how long ZooKeeper keeps
  // the session of a client it does not hear from (its server clamps it to
  // 2..20 ticks). The C client gives up on a silent ensemble member after
  // 2/3 of it and tries the next. Default 10000 ms.
  int zookeeper_session_timeout_ms = 10000;

  // --- Call authentication (docs/SECURITY.md). ---
  // Set: each new connection first sends a hello, a health check whose
  // RpcMeta.authentication_data is `authenticator->GenerateCredential()`
  // (asked anew for every connection, so a rotated credential is picked up),
  // with calls written right behind it (no extra round trip); this is
  // brpc's rule of a connection's first request carrying the credential. A
  // server that refuses it answers 1004: every call on that connection ends
  // 1004 "the server refused this connection (1004): <its reason>" (never
  // sent again: another server would refuse it too), the server is
  // reconnected after back-off, and calls meanwhile end 1004 with the same
  // text. Shared by every group and connection: its methods must be
  // thread-safe. Default: null, no credential.
  std::shared_ptr<const Authenticator> authenticator = nullptr;
  // With an authenticator: every request (and health check) carries the
  // credential too, asked of the authenticator on the calling thread, for
  // servers with ServerOptions::authenticate_every_call. Default false.
  bool credential_on_every_call = false;

  // --- TLS (docs/SECURITY.md, "TLS"). ---
  // Set: every connection is TLS (1.2 or 1.3), its handshake started as
  // soon as TCP connects, with calls queued behind it. The server's
  // certificate is verified by default (TlsOptions::verify_peer: the chain
  // against ca_file or the system's store, the dates, and the name:
  // server_name, or else the host dialled); certificate_file and
  // private_key_file present a client certificate (mutual TLS). A failed
  // handshake ends the connection's calls 1016 (ESSL) with the reason, e.g.
  // "TLS handshake with 10.0.0.7:8000 failed: certificate verify failed
  // (certificate has expired)"; Channel::Init fails when a file cannot be
  // used. Default: none, clear text.
  std::optional<TlsOptions> tls{};
};

}  // namespace percore
