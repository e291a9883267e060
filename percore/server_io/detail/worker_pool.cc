#include <percore/server_io/detail/worker_pool.h>

#include <percore/server_io/detail/server_call.h>

namespace percore::detail {

WorkerPool::WorkerPool(int threads, size_t queue_capacity) : queue_capacity_(queue_capacity) {
  threads_.reserve(threads);
  for (int i = 0; i < threads; ++i)
    threads_.emplace_back([this] { work(); });
}

WorkerPool::~WorkerPool() {
  shutdown();
}

bool WorkerPool::try_submit(ServerCall* call) {
  if (queued_.fetch_add(1, std::memory_order_relaxed) >= queue_capacity_) {
    queued_.fetch_sub(1, std::memory_order_relaxed);
    return false;
  }
  queue_.enqueue(call);
  return true;
}

void WorkerPool::work() {
  for (;;) {
    ServerCall* call = nullptr;
    queue_.wait_dequeue(call);
    if (call == nullptr)
      return;  // shutdown
    queued_.fetch_sub(1, std::memory_order_relaxed);
    call->execute();
  }
}

void WorkerPool::shutdown() {
  for (size_t i = 0; i < threads_.size(); ++i)
    queue_.enqueue(nullptr);
  for (std::thread& thread : threads_)
    thread.join();
  threads_.clear();
  // The queue gives no order across producers, so a worker may have taken its
  // stop signal before some calls: run those here.
  ServerCall* call = nullptr;
  while (queue_.try_dequeue(call)) {
    if (call == nullptr)
      continue;
    queued_.fetch_sub(1, std::memory_order_relaxed);
    call->execute();
  }
}

}  // namespace percore::detail
