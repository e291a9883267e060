#pragma once

#include <memory>
#include <vector>

namespace percore {

namespace detail {
class ThreadGroup;
}

// Options of a ClientRuntime. Each field: meaning, default, limits.
struct ClientRuntimeOptions {
  // Thread groups (each: a send thread, a receive thread, callback threads
  // and its own connections). Default 0 (or any value <= 0): one per core.
  // At most 256.
  int groups = 0;
  // Calls in flight per group, over every Channel that uses it; past it a
  // call fails at once with 1011 (overcrowded). A call with a queued
  // callback (CompletionMode::kQueuedCallback) counts until its `done` has
  // returned. Default 4096; 1..1<<20.
  int max_inflight_per_group = 4096;
  // Callback threads per group for CompletionMode::kQueuedCallback.
  // Default 1; 1..64.
  int callback_threads = 1;
  // How long a parking thread (send thread, synchronous caller) polls before
  // it sleeps, in microseconds. Default 0 (sleep at once); at most 1000.
  int spin_us = 0;
  // Whether a calling thread writes its call itself when its group's send
  // thread is asleep (no other call waits to be written), instead of
  // waking it: one thread wake-up and two system calls fewer per call at
  // low load, as brpc's caller writes when uncontended. The caller then does
  // the send thread's work for that turn (placing the call on a connection,
  // one sendmsg); callbacks still run where CompletionMode says. Calls made
  // by inline callbacks for one batch of replies are written together after
  // it; calls from queued callbacks (their thread may block) wake the send
  // thread. Under load the send thread is awake and batches as before.
  // Default true.
  bool callers_write = true;
};

// The share-nothing thread groups that Channels run their calls on. Many
// Channels share one runtime: each group holds connections to the servers
// of every Channel that uses it, and a calling thread sticks to the same
// group whatever Channel it calls through. So ten Channels on one runtime
// start no more threads than one.
//
// Every Channel uses ClientRuntime::Default() (created on first use, one
// group per core) unless ChannelOptions::runtime names another or
// ChannelOptions::private_groups asks for groups of its own. A runtime
// lives as long as the Channels that use it (they hold a shared_ptr).
//
// Owns: its groups and their threads. Threads: any; the destructor joins
// the groups' threads (no Channel uses the runtime by then).
class ClientRuntime {
 public:
  explicit ClientRuntime(ClientRuntimeOptions options = {});
  ~ClientRuntime();
  ClientRuntime(const ClientRuntime&) = delete;
  ClientRuntime& operator=(const ClientRuntime&) = delete;

  // The process-wide runtime with default options, created on first use.
  static std::shared_ptr<ClientRuntime> Default();

  const ClientRuntimeOptions& options() const { return options_; }
  int group_count() const { return static_cast<int>(groups_.size()); }

  // --- for Channel ---
  detail::ThreadGroup& group(int index) { return *groups_[index]; }
  // The group a call from the calling thread runs on: a group's own thread
  // (a callback making its next call) stays in it; any other thread sticks
  // to one group.
  int group_for_this_thread() const;

 private:
  ClientRuntimeOptions options_;
  std::vector<std::unique_ptr<detail::ThreadGroup>> groups_;
};

}  // namespace percore
