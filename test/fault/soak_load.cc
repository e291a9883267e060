#include "test/fault/soak_load.h"

#include <algorithm>

#include <percore/client_proxy/controller.h>
#include <percore/proto/echo.pb.h>
#include <percore/proto/prime.pb.h>

namespace percore::testing {
namespace {

// A prime whose trial division takes about 50 ms (2.5e7 divisions).
constexpr uint64_t kSlowPrime = 2500000000000043ULL;
// While slow handlers are on, one call in this many is a slow prime
// (5 a second at 2,000 calls a second: a quarter of a core on the servers).
constexpr size_t kSlowPrimeEvery = 400;

bool is_prime(uint64_t number) {
  if (number < 2 || (number > 2 && number % 2 == 0))
    return number == 2;
  for (uint64_t divisor = 3; divisor <= number / divisor; divisor += 2) {
    if (number % divisor == 0)
      return false;
  }
  return true;
}

CallKind kind_of(size_t id, bool slow_handlers) {
  if (slow_handlers && id % kSlowPrimeEvery == kSlowPrimeEvery / 2)
    return CallKind::kSlowPrime;
  const size_t slot = id % 100;
  if (slot < 60)
    return CallKind::kEcho;
  if (slot < 70)
    return CallKind::kLargeEcho;
  return CallKind::kPrime;
}

}  // namespace

const char* call_kind_name(CallKind kind) {
  switch (kind) {
    case CallKind::kEcho:
      return "echo";
    case CallKind::kLargeEcho:
      return "echo 32 KiB";
    case CallKind::kPrime:
      return "is_prime";
    case CallKind::kSlowPrime:
      return "is_prime (slow)";
  }
  return "?";
}

struct SoakLoad::Call : google::protobuf::Closure {
  explicit Call(SoakLoad& owner) : load(owner) {}

  void Run() override {
    // A second end of the same call is counted, and nothing else: the
    // object is not freed at its first end but kept aside (quarantine), so
    // that a second Run() is a count in the ledger, not a use after free.
    if (ran.exchange(true)) {
      load.ledger_.record_end(id);
      return;
    }
    CallRecord& record = load.records_[id];
    record.ended_us = load.now_us();
    int32_t code = controller.ErrorCode();
    if (code == 0) {
      const bool right = record.kind == CallKind::kEcho || record.kind == CallKind::kLargeEcho
                             ? echo_response.message() == echo_request.message()
                             : prime_response.is_prime() == expected_prime;
      code = right ? 0 : -2;
    }
    record.code = code;
    const std::string& remote = controller.remote_side();
    const auto found =
        std::find(load.options_.servers.begin(), load.options_.servers.end(), remote);
    record.server = found == load.options_.servers.end()
                        ? int16_t{-1}
                        : static_cast<int16_t>(found - load.options_.servers.begin());
    load.ledger_.record_end(id);
    // Large bodies go now; the object waits in quarantine before reuse.
    std::string().swap(*echo_request.mutable_message());
    std::string().swap(*echo_response.mutable_message());
    load.quarantine(this);
    load.ended_.fetch_add(1, std::memory_order_release);
  }

  // Ready for another call.
  void reset(size_t call_id) {
    id = call_id;
    controller.Reset();
    echo_request.Clear();
    echo_response.Clear();
    prime_request.Clear();
    prime_response.Clear();
    expected_prime = false;
    ran.store(false);
  }

  SoakLoad& load;
  size_t id = 0;
  std::atomic<bool> ran{false};
  SoakClock::time_point ended_at;
  Controller controller;
  example::EchoRequest echo_request;
  example::EchoResponse echo_response;
  prime::IsPrimeRequest prime_request;
  prime::IsPrimeResponse prime_response;
  bool expected_prime = false;
};

SoakLoad::SoakLoad(Channel& echo_channel, Channel& prime_channel, Options options)
    : echo_channel_(echo_channel),
      prime_channel_(prime_channel),
      options_(std::move(options)),
      capacity_(static_cast<size_t>(options_.calls_per_second *
                                    static_cast<double>(options_.max_duration.count()) / 1000.0) +
                1000),
      ledger_(capacity_),
      // Every record is written now, so that the client's RSS at the start
      // already holds them and its growth is percore's own.
      records_(capacity_),
      large_text_(32 * 1024, 'x') {}

SoakLoad::~SoakLoad() {
  stop_.store(true);
  if (thread_.joinable())
    thread_.join();
  // Calls that never ended are left alone: percore may still end them.
  std::lock_guard lock(quarantine_mutex_);
  for (Call* call : quarantine_)
    delete call;
}

int64_t SoakLoad::now_us() const {
  return std::chrono::duration_cast<std::chrono::microseconds>(SoakClock::now() - began_).count();
}

void SoakLoad::start() {
  began_ = SoakClock::now();
  thread_ = std::thread([this] { run(); });
}

void SoakLoad::run() {
  const double per_us = options_.calls_per_second / 1e6;
  const int64_t end_us = options_.max_duration.count() * 1000;
  size_t next = 0;
  for (;;) {
    const int64_t now = now_us();
    if (now >= end_us || stop_.load(std::memory_order_relaxed))
      break;
    // Every call due by now is issued, however late the loop woke up.
    const size_t due =
        std::min(capacity_, static_cast<size_t>(static_cast<double>(now) * per_us) + 1);
    while (next < due)
      issue(next++);
    const int64_t next_due_us = static_cast<int64_t>(static_cast<double>(next) / per_us);
    std::this_thread::sleep_until(began_ + std::chrono::microseconds(next_due_us));
  }
}

void SoakLoad::quarantine(Call* call) {
  call->ended_at = SoakClock::now();
  std::lock_guard lock(quarantine_mutex_);
  quarantine_.push_back(call);
}

SoakLoad::Call* SoakLoad::take_call() {
  {
    std::lock_guard lock(quarantine_mutex_);
    if (!quarantine_.empty() && SoakClock::now() - quarantine_.front()->ended_at > kQuarantine) {
      Call* call = quarantine_.front();
      quarantine_.pop_front();
      return call;
    }
  }
  return new Call(*this);
}

void SoakLoad::issue(size_t id) {
  Call* call = take_call();
  call->reset(id);
  CallRecord& record = records_[id];
  record.kind = kind_of(id, slow_handlers_.load(std::memory_order_relaxed));
  const int timeout_ms =
      record.kind == CallKind::kSlowPrime ? options_.slow_prime_timeout_ms : options_.timeout_ms;
  call->controller.set_timeout_ms(timeout_ms);
  call->controller.set_max_retry(options_.max_retry);
  call->controller.set_log_id(static_cast<int64_t>(id));
  record.issued_us = now_us();
  record.deadline_us = record.issued_us + int64_t{timeout_ms} * 1000;
  issued_.store(id + 1, std::memory_order_release);
  switch (record.kind) {
    case CallKind::kEcho:
    case CallKind::kLargeEcho: {
      std::string text = std::string("call ") + std::to_string(id);
      if (record.kind == CallKind::kLargeEcho)
        text += large_text_;
      call->echo_request.set_message(std::move(text));
      example::EchoService_Stub stub(&echo_channel_);
      stub.Echo(&call->controller, &call->echo_request, &call->echo_response, call);
      break;
    }
    case CallKind::kPrime:
    case CallKind::kSlowPrime: {
      // Odd numbers just above 10^6, primes and not; the client checks each
      // answer by its own trial division (500 divisions, about a microsecond).
      const uint64_t number =
          record.kind == CallKind::kSlowPrime ? kSlowPrime : 1000003 + 2 * (id % 50);
      call->prime_request.set_number(number);
      call->expected_prime = number == kSlowPrime || is_prime(number);
      prime::PrimeService_Stub stub(&prime_channel_);
      stub.IsPrime(&call->controller, &call->prime_request, &call->prime_response, call);
      break;
    }
  }
}

bool SoakLoad::finish(std::chrono::milliseconds drain) {
  stop_.store(true);
  if (thread_.joinable())
    thread_.join();
  const auto deadline = SoakClock::now() + drain;
  while (ended() < issued() && SoakClock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  return ended() == issued();
}

}  // namespace percore::testing
