#pragma once

#include <cstdint>

#include <percore/proto/prime.pb.h>

namespace percore::examples {

// True if `number` is prime, by trial division: deliberately CPU-heavy
// (32416190071 takes about 90,000 divisions).
bool is_prime(uint64_t number);

// prime.PrimeService. Compute-heavy: register it on the worker pool.
// Threads: any; stateless.
class PrimeServiceImpl : public prime::PrimeService {
 public:
  void IsPrime(google::protobuf::RpcController* controller, const prime::IsPrimeRequest* request,
               prime::IsPrimeResponse* response, google::protobuf::Closure* done) override;
};

}  // namespace percore::examples
