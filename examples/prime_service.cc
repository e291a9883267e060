#include "examples/prime_service.h"

#include <atomic>
#include <csignal>
#include <cstdlib>
#include <memory>
#include <vector>

#include <percore/server_io/server_controller.h>

namespace percore::examples {

bool is_prime(uint64_t number) {
  if (number < 2)
    return false;
  if (number < 4)
    return true;
  if (number % 2 == 0)
    return false;
  // divisor <= number / divisor avoids overflowing divisor * divisor.
  for (uint64_t divisor = 3; divisor <= number / divisor; divisor += 2) {
    if (number % divisor == 0)
      return false;
  }
  return true;
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
