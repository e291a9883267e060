#include "examples/prime_service.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdlib>
#include <deque>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include <percore/server_io/server_controller.h>

namespace percore::examples {

bool is_prime(uint64_t number, const std::atomic<bool>& stop) {
  if (number < 2)
    return false;
  if (number < 4)
    return true;
  if (number % 2 == 0)
    return false;
  uint64_t until_check = 1u << 20;
  for (uint64_t divisor = 3; divisor <= number / divisor; divisor += 2) {
    if (number % divisor == 0)
      return false;
    if (--until_check == 0) {
      if (stop.load(std::memory_order_relaxed))
        return false;
      until_check = 1u << 20;
    }
  }
  return true;
}

bool is_prime(uint64_t number) {
  static const std::atomic<bool> never{false};
  return is_prime(number, never);
}

namespace {

// Carries out a requested fault; returns only for FAULT_NONE.
void misbehave(prime::Fault fault) {
  switch (fault) {
    case prime::FAULT_CRASH:
      // The signal a null dereference gets, raised with its default action:
      // a sanitizer's handler or check would otherwise turn it into an exit.
      std::signal(SIGSEGV, SIG_DFL);
      std::raise(SIGSEGV);
      break;
    case prime::FAULT_LOOP: {
      std::atomic<uint64_t> spins{0};
      for (;;)
        spins.fetch_add(1, std::memory_order_relaxed);
    }
    case prime::FAULT_EXHAUST_MEMORY: {
      // Touched, so that the pages are real; ends in std::bad_alloc (an
      // address-space limit) or the kernel's OOM killer.
      std::vector<std::unique_ptr<char[]>> held;
      for (;;) {
        constexpr size_t kChunk = 16 << 20;
        held.emplace_back(new char[kChunk]);
        for (size_t i = 0; i < kChunk; i += 4096)
          held.back()[i] = 1;
      }
    }
    case prime::FAULT_ABORT:
      std::abort();
    default:
      break;
  }
}

}  // namespace

void PrimeServiceImpl::IsPrime(google::protobuf::RpcController* controller,
                               const prime::IsPrimeRequest* request,
                               prime::IsPrimeResponse* response, google::protobuf::Closure* done) {
  if (request->fault() != prime::FAULT_NONE) {
    if (!allow_faults_) {
      const char* text =
          "fault injection is off on this server (percore-server --prime-allow-faults)";
      if (auto* server_controller = dynamic_cast<ServerController*>(controller)) {
        server_controller->SetFailed(ErrorCode::kBadRequest, text);
      } else {
        controller->SetFailed(text);
      }
      done->Run();
      return;
    }
    misbehave(request->fault());
  }
  response->set_is_prime(is_prime(request->number()));
  done->Run();
}

}  // namespace percore::examples

namespace percore::examples {
namespace {

// One FindPrimes stream: chunks queue here and a thread of the stream's own
// tests them (the handler's callbacks run on the server's I/O thread, which
// must not compute). The thread holds the state; it ends when the stream
// ends or after the summary.
class PrimeStreamWork final : public StreamHandler,
                              public std::enable_shared_from_this<PrimeStreamWork> {
 public:
  PrimeStreamWork(std::shared_ptr<std::atomic<int>> streams_served, bool allow_faults)
      : streams_served_(std::move(streams_served)), allow_faults_(allow_faults) {}
  ~PrimeStreamWork() override { streams_served_->fetch_sub(1, std::memory_order_relaxed); }

  void start(std::shared_ptr<Stream> stream) {
    {
      std::lock_guard lock(mutex_);
      stream_ = std::move(stream);
    }
    // Detached: it owns what it uses (this, through shared_from_this, and
    // the stream), and it never waits on the server's threads.
    std::thread([self = shared_from_this()] { self->run(); }).detach();
  }

  void on_received_messages(Stream&, std::span<std::string> messages) override {
    std::lock_guard lock(mutex_);
    for (std::string& message : messages) {
      if (overrun_)
        break;  // Told in the summary; nothing more is kept.
      if (queued_bytes_ + message.size() > PrimeServiceImpl::kMaxQueuedChunkBytes) {
        // The client ran too far ahead (or sent one huge chunk): the thread
        // stops, writes the error summary and closes.
        overrun_ = true;
        stop_.store(true, std::memory_order_relaxed);
        break;
      }
      queued_bytes_ += message.size();
      queue_.push_back(std::move(message));
    }
    changed_.notify_all();
  }

  void on_closed(Stream&, StreamEndReason) override {
    std::lock_guard lock(mutex_);
    ended_ = true;
    stop_.store(true, std::memory_order_relaxed);  // Abandons the chunk in progress.
    queue_.clear();
    changed_.notify_all();
  }

 private:
  void run() {
    prime::PrimeSummary summary;
    for (;;) {
      std::string message;
      {
        std::unique_lock lock(mutex_);
        changed_.wait(lock, [&] { return ended_ || overrun_ || !queue_.empty(); });
        if (ended_)
          return;  // The client closed or the connection broke: nobody to tell.
        if (overrun_) {
          summary.set_error("more than " + std::to_string(PrimeServiceImpl::kMaxQueuedChunkBytes) +
                            " bytes of chunks waiting (write fewer or smaller chunks ahead)");
          break;
        }
        message = std::move(queue_.front());
        queue_.pop_front();
        queued_bytes_ -= message.size();
      }
      prime::PrimeChunk chunk;
      if (!chunk.ParseFromString(message)) {
        summary.set_error("chunk " + std::to_string(summary.chunks()) + " is not a PrimeChunk");
        break;
      }
      if (chunk.fault() != prime::FAULT_NONE) {
        if (!allow_faults_) {
          summary.set_error("chunk " + std::to_string(summary.chunks()) +
                            " asks for a fault; fault injection is off on this server "
                            "(percore-server --prime-allow-faults)");
          break;
        }
        misbehave(chunk.fault());
      }
      prime::PrimeStreamReply reply;
      prime::PrimesFound* found = reply.mutable_found();
      found->set_chunk(summary.chunks());
      for (const uint64_t number : chunk.numbers()) {
        if (stop_.load(std::memory_order_relaxed))
          break;
        if (is_prime(number, stop_))
          found->add_primes(number);
      }
      if (stop_.load(std::memory_order_relaxed)) {
        std::lock_guard lock(mutex_);
        if (ended_)
          return;
        continue;  // An overrun: the loop writes the error summary.
      }
      summary.set_chunks(summary.chunks() + 1);
      summary.set_numbers_checked(summary.numbers_checked() +
                                  static_cast<uint64_t>(chunk.numbers_size()));
      summary.set_primes_found(summary.primes_found() + static_cast<uint64_t>(found->primes_size()));
      if (!write(reply)) {
        stream_->Close();  // Ended already, or the client cannot take replies.
        return;
      }
      if (chunk.last())
        break;
    }
    prime::PrimeStreamReply reply;
    *reply.mutable_summary() = summary;
    write(reply);
    stream_->Close();  // After the summary, or because it could not go.
  }

  // Writes one reply, waiting while the client's window is full. False if
  // the stream ended.
  bool write(const prime::PrimeStreamReply& reply) {
    std::string bytes = reply.SerializeAsString();
    for (;;) {
      const StreamWriteStatus status = stream_->Write(std::move(bytes));
      if (status == StreamWriteStatus::kOk)
        return true;
      if (status != StreamWriteStatus::kFull)
        return false;
      // This thread is not the I/O thread: waiting for FEEDBACK is fine.
      stream_->WaitWritable(std::chrono::seconds(1));
    }
  }

  const std::shared_ptr<std::atomic<int>> streams_served_;
  const bool allow_faults_;
  std::atomic<bool> stop_{false};  // The stream ended or overran: stop computing.
  std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<std::string> queue_;
  size_t queued_bytes_ = 0;
  bool overrun_ = false;
  bool ended_ = false;
  std::shared_ptr<Stream> stream_;  // Set before the thread starts.
};

}  // namespace

void PrimeServiceImpl::FindPrimes(google::protobuf::RpcController* controller,
                                  const prime::FindPrimesRequest*, prime::FindPrimesResponse*,
                                  google::protobuf::Closure* done) {
  auto* server_controller = static_cast<ServerController*>(controller);
  if (find_primes_streams_->fetch_add(1, std::memory_order_relaxed) >= kMaxFindPrimesStreams) {
    find_primes_streams_->fetch_sub(1, std::memory_order_relaxed);
    server_controller->SetFailed(ErrorCode::kServerLimitReached,
                                 "too many FindPrimes streams (" +
                                     std::to_string(kMaxFindPrimesStreams) + ") on this server");
    done->Run();
    return;
  }
  // Counted from here; the work object gives the place back when it goes.
  auto work = std::make_shared<PrimeStreamWork>(find_primes_streams_, allow_faults_);
  StreamOptions options;
  options.handler = work;
  std::shared_ptr<Stream> stream;
  if (!server_controller->AcceptStream(options, &stream)) {
    server_controller->SetFailed(
        ErrorCode::kBadRequest,
        server_controller->has_remote_stream()
            ? "FindPrimes cannot accept the stream here (too many streams on the connection)"
            : "FindPrimes needs a stream attached to the call (Controller::open_stream)");
    done->Run();
    return;
  }
  work->start(std::move(stream));
  done->Run();
}

}  // namespace percore::examples
