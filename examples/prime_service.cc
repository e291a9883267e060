#include "examples/prime_service.h"

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

void PrimeServiceImpl::IsPrime(google::protobuf::RpcController*,
                               const prime::IsPrimeRequest* request,
                               prime::IsPrimeResponse* response, google::protobuf::Closure* done) {
  response->set_is_prime(is_prime(request->number()));
  done->Run();
}

}  // namespace percore::examples
