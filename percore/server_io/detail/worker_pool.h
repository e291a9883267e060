#pragma once

#include <concurrentqueue/blockingconcurrentqueue.h>

#include <atomic>
#include <cstddef>
#include <thread>
#include <vector>

namespace percore::detail {

class ServerCall;

// A bounded pool of threads that run compute-heavy handlers, fed by a
// lock-free queue. Idle workers sleep on the queue's semaphore (no spinning).
//
// Owns: its threads and the queued calls until a worker takes them.
// Threads: try_submit from any thread; shutdown from the control thread.
class WorkerPool {
 public:
  WorkerPool(int threads, size_t queue_capacity);
  ~WorkerPool();
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  // Queues `call` unless `queue_capacity` calls already wait; false when full.
  bool try_submit(ServerCall* call);

  // Calls waiting for a worker now (a gauge for /metrics). Any thread.
  size_t queued() const { return queued_.load(std::memory_order_relaxed); }
  size_t threads() const { return threads_.size(); }

  // Joins the workers; calls still queued are executed on this thread.
  // Idempotent.
  void shutdown();

 private:
  void work();

  moodycamel::BlockingConcurrentQueue<ServerCall*> queue_;
  const size_t queue_capacity_;
  std::atomic<size_t> queued_{0};
  std::vector<std::thread> threads_;
};

}  // namespace percore::detail
