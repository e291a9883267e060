#pragma once

#include <cstdint>

#include <percore/proto/prime.pb.h>

namespace percore::examples {

// True if `number` is prime, by trial division: deliberately CPU-heavy
// (32416190071 takes about 90,000 divisions).
bool is_prime(uint64_t number);

// prime.PrimeService. Compute-heavy: register it on the worker pool, or on
// the process pool to isolate it. A request's `fault` (crash, loop, exhaust
// memory, abort) is carried out only when `allow_faults` is set; otherwise
// it is answered 1003.
// Threads: any; stateless.
class PrimeServiceImpl : public prime::PrimeService {
 public:
  explicit PrimeServiceImpl(bool allow_faults = false) : allow_faults_(allow_faults) {}

  void IsPrime(google::protobuf::RpcController* controller, const prime::IsPrimeRequest* request,
               prime::IsPrimeResponse* response, google::protobuf::Closure* done) override;

 private:
  const bool allow_faults_;
};

}  // namespace percore::examples
