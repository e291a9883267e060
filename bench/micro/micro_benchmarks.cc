// Micro-benchmarks of the pieces every call goes through: frame encoding and
// decoding, the call table, the queue between threads and the wake-up check.
// Each reports time per operation and heap allocations per operation
// (allocs/op); on the call path the latter should be 0.
//
//   percore-micro --benchmark_min_time=0.2

#include <benchmark/benchmark.h>
#include <concurrentqueue/concurrentqueue.h>
#include <sys/uio.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <span>
#include <string>
#include <thread>

#include "bench/micro/alloc_counter.h"
#include <percore/client_proxy/detail/call_table.h>
#include <percore/client_proxy/detail/event_notifier.h>
#include <percore/proto/echo.pb.h>
#include <percore/proto/frame.h>
#include <percore/proto/detail/frame_decoder.h>
#include <percore/proto/detail/frame_encoder.h>
#include <percore/proto/detail/gather_buffer.h>
#include <percore/proto/rpc_meta.pb.h>

namespace percore::micro {
namespace {

const std::string kServiceName = "example.EchoService";
const std::string kMethodName = "Echo";
constexpr int kTimeoutMs = 1000;
// Correlation ids as the call table makes them, (generation << 32) | slot:
// all of one varint size, so that the frames keep one size.
constexpr int64_t kFirstCorrelationId = int64_t{1} << 36;

// Counts the calling thread's allocations from construction to report().
class AllocationCount {
 public:
  AllocationCount() : start_(thread_allocations()) {}

  // Sets the allocs/op counter: allocations over iterations (summed over the
  // benchmark's threads, each reporting its own). `extra` adds allocations
  // made by helper threads.
  void report(benchmark::State& state, uint64_t extra = 0) const {
    const uint64_t allocations = thread_allocations() - start_ + extra;
    state.counters["allocs/op"] =
        benchmark::Counter(static_cast<double>(allocations), benchmark::Counter::kAvgIterations);
  }

 private:
  uint64_t start_;
};

// Spin-waiting that gives the CPU away after a while: on a machine with as
// few CPUs as threads (or busy with other work) the thread waited for may
// need this one's CPU.
class Backoff {
 public:
  void pause() {
    if (++spins_ < kSpinsBeforeYield) {
#if defined(__x86_64__) || defined(__i386__)
      __builtin_ia32_pause();
#elif defined(__aarch64__)
      asm volatile("yield");
#endif
    } else {
      std::this_thread::yield();
    }
  }
  void reset() {
    spins_ = 0;
  }

 private:
  static constexpr int kSpinsBeforeYield = 256;
  int spins_ = 0;
};

// The request meta as the client proxy fills it for each call.
void fill_request_meta(wire::RpcMeta& meta, int64_t correlation_id) {
  meta.Clear();
  meta.set_correlation_id(correlation_id);
  wire::RpcRequestMeta* request_meta = meta.mutable_request();
  request_meta->set_service_name(kServiceName);
  request_meta->set_method_name(kMethodName);
  request_meta->set_timeout_ms(kTimeoutMs);
}

// --- Encoding -------------------------------------------------------------

// The client's encoding of a call: head (header, meta, message) into a reused
// string, with a reused meta.
void BM_EncodeRequest(benchmark::State& state) {
  example::EchoRequest request;
  request.set_message(std::string(static_cast<size_t>(state.range(0)), 'x'));
  wire::RpcMeta meta;
  std::string head;
  int64_t correlation_id = kFirstCorrelationId;

  auto encode = [&] {
    fill_request_meta(meta, ++correlation_id);
    head.clear();
    return encode_frame_head(meta, &request, 0, kDefaultMaxBodyBytes, head) == EncodeStatus::kOk;
  };
  encode();  // First use sizes the reused meta and string.

  AllocationCount allocations;
  for (auto _ : state) {
    if (!encode()) {
      state.SkipWithError("encode_frame_head failed");
      break;
    }
    benchmark::DoNotOptimize(head.data());
    benchmark::ClobberMemory();
  }
  allocations.report(state);
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(head.size()));
}
BENCHMARK(BM_EncodeRequest)->ArgName("payload")->Arg(16)->Arg(1024);

// The server's encoding of an answer: the whole frame into the connection's
// GatherBuffer, then handed to a gathered write and consumed.
void BM_EncodeResponseToGatherBuffer(benchmark::State& state) {
  example::EchoResponse response;
  response.set_message(std::string(static_cast<size_t>(state.range(0)), 'x'));
  wire::RpcMeta meta;
  GatherBuffer out;
  iovec vecs[8];
  int64_t correlation_id = kFirstCorrelationId;
  size_t frame_bytes = 0;

  auto encode_and_write = [&] {
    meta.Clear();
    meta.set_correlation_id(++correlation_id);
    meta.mutable_response();
    if (encode_frame(meta, &response, std::string(), kDefaultMaxBodyBytes, out) !=
        EncodeStatus::kOk) {
      return false;
    }
    const int count = out.fill_iovecs(vecs, 8);
    benchmark::DoNotOptimize(count);
    benchmark::DoNotOptimize(vecs);
    frame_bytes = out.size();
    out.consume(frame_bytes);
    return true;
  };
  encode_and_write();  // First use sizes the reused meta and buffer.

  AllocationCount allocations;
  for (auto _ : state) {
    if (!encode_and_write()) {
      state.SkipWithError("encode_frame failed");
      break;
    }
  }
  allocations.report(state);
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(frame_bytes));
}
BENCHMARK(BM_EncodeResponseToGatherBuffer)->ArgName("payload")->Arg(16)->Arg(1024);

// --- Decoding -------------------------------------------------------------

// One iteration is one request frame: decoded, its meta checked and its
// EchoRequest parsed into a reused message. The decoder is refilled through
// prepare()/commit() with a buffer of `batch` frames whenever it runs dry, as
// a read that brought `batch` frames would.
void BM_DecodeFrames(benchmark::State& state) {
  const auto batch = static_cast<int>(state.range(0));
  example::EchoRequest request;
  request.set_message(std::string(static_cast<size_t>(state.range(1)), 'x'));
  std::string bytes;
  wire::RpcMeta meta;
  for (int i = 0; i < batch; ++i) {
    fill_request_meta(meta, kFirstCorrelationId + i);
    if (encode_frame_head(meta, &request, 0, kDefaultMaxBodyBytes, bytes) != EncodeStatus::kOk) {
      state.SkipWithError("encode_frame_head failed");
      return;
    }
  }

  FrameDecoder decoder;
  Frame frame;
  example::EchoRequest parsed;

  auto decode = [&] {
    DecodeStatus status = decoder.next(frame);
    if (status == DecodeStatus::kNeedMore) {
      const std::span<char> space = decoder.prepare(bytes.size());
      std::memcpy(space.data(), bytes.data(), bytes.size());
      decoder.commit(bytes.size());
      status = decoder.next(frame);
    }
    return status == DecodeStatus::kFrame &&
           parsed.ParseFromArray(frame.message.data(), static_cast<int>(frame.message.size()));
  };
  decode();  // First use sizes the buffer, the reused meta and message.

  AllocationCount allocations;
  for (auto _ : state) {
    if (!decode()) {
      state.SkipWithError("decoding failed");
      break;
    }
    benchmark::DoNotOptimize(parsed.message().data());
  }
  allocations.report(state);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_DecodeFrames)->ArgNames({"batch", "payload"})->ArgsProduct({{1, 64}, {16, 1024}});

// --- Call table -----------------------------------------------------------

constexpr uint32_t kCallTableCapacity = 4096;

// One call's life in the table: acquire, publish, complete, release.
bool call_table_cycle(detail::CallTable& table) {
  const std::optional<detail::CallTable::Slot> slot = table.acquire();
  if (!slot)
    return false;
  table.publish(*slot);
  if (!table.try_complete(*slot))
    return false;
  table.release(*slot);
  return true;
}

void BM_CallTableCycle(benchmark::State& state) {
  detail::CallTable table(kCallTableCapacity);

  AllocationCount allocations;
  for (auto _ : state) {
    if (!call_table_cycle(table)) {
      state.SkipWithError("call table cycle failed");
      break;
    }
  }
  allocations.report(state);
}
BENCHMARK(BM_CallTableCycle);

detail::CallTable& shared_call_table() {
  static detail::CallTable table(kCallTableCapacity);
  return table;
}

// The same cycle from several threads on one table (callers of one group).
void BM_CallTableContended(benchmark::State& state) {
  detail::CallTable& table = shared_call_table();

  AllocationCount allocations;
  for (auto _ : state) {
    if (!call_table_cycle(table)) {
      state.SkipWithError("call table cycle failed");
      break;
    }
  }
  allocations.report(state);
}
BENCHMARK(BM_CallTableContended)->ThreadRange(1, 2)->UseRealTime();

// --- Handoff between threads ----------------------------------------------

// The default traits, with the queue's own allocations (it calls malloc, not
// operator new) added to the allocation count.
struct CountingQueueTraits : moodycamel::ConcurrentQueueDefaultTraits {
  static void* malloc(size_t bytes) {
    count_allocation();
    return std::malloc(bytes);
  }
  static void free(void* memory) { std::free(memory); }
};

// One iteration is one item enqueued on this thread and dequeued in bulk by a
// consumer thread. After every `batch` items the producer waits until the
// consumer has taken them all, so the time covers the whole handoff.
void BM_QueueHandoff(benchmark::State& state) {
  const auto batch = static_cast<int64_t>(state.range(0));
  moodycamel::ConcurrentQueue<uint64_t, CountingQueueTraits> queue;
  std::atomic<uint64_t> consumed{0};
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> consumer_allocations{0};

  std::thread consumer([&] {
    const uint64_t start = thread_allocations();
    constexpr size_t kBulk = 256;
    uint64_t items[kBulk];
    uint64_t total = 0;
    uint64_t sum = 0;
    Backoff backoff;
    while (!stop.load(std::memory_order_relaxed)) {
      const size_t count = queue.try_dequeue_bulk(items, kBulk);
      if (count == 0) {
        backoff.pause();
        continue;
      }
      backoff.reset();
      for (size_t i = 0; i < count; ++i)
        sum += items[i];
      total += count;
      consumed.store(total, std::memory_order_release);
    }
    benchmark::DoNotOptimize(sum);
    consumer_allocations.store(thread_allocations() - start, std::memory_order_relaxed);
  });

  uint64_t produced = 0;
  auto wait_for_consumer = [&] {
    Backoff backoff;
    while (consumed.load(std::memory_order_acquire) != produced)
      backoff.pause();
  };
  // Warm up with full batches: the producer's queue state, its blocks and its
  // block index are allocated on first use.
  for (int round = 0; round < 16; ++round) {
    for (int64_t i = 0; i < batch; ++i)
      queue.enqueue(produced++);
    wait_for_consumer();
  }

  AllocationCount allocations;
  int64_t in_batch = 0;
  for (auto _ : state) {
    queue.enqueue(produced++);
    if (++in_batch == batch) {
      in_batch = 0;
      wait_for_consumer();
    }
  }
  wait_for_consumer();
  stop.store(true, std::memory_order_relaxed);
  consumer.join();
  allocations.report(state, consumer_allocations.load(std::memory_order_relaxed));
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_QueueHandoff)->ArgName("batch")->Arg(1)->Arg(64)->Arg(1024)->UseRealTime();

// notify() with no thread parked: a fence and a load, no system call.
void BM_NotifierNoSleeper(benchmark::State& state) {
  detail::EventNotifier notifier;

  AllocationCount allocations;
  for (auto _ : state)
    notifier.notify();
  allocations.report(state);
  if (notifier.wakeups_signalled() != 0)
    state.SkipWithError("notify() signalled with nobody parked");
}
BENCHMARK(BM_NotifierNoSleeper);

}  // namespace
}  // namespace percore::micro

BENCHMARK_MAIN();
