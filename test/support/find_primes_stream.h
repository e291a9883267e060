#pragma once

#include <memory>

#include <percore/client_proxy/channel.h>
#include <percore/client_proxy/controller.h>
#include <percore/proto/prime.pb.h>
#include <percore/proto/stream.h>

namespace percore::testing {

// Calls prime.PrimeService.FindPrimes on `channel` with a stream whose
// handler is `handler`; returns the client's end (the call's outcome is in
// `controller`).
inline std::shared_ptr<Stream> open_find_primes(google::protobuf::RpcChannel* channel,
                                                std::shared_ptr<StreamHandler> handler,
                                                Controller& controller) {
  StreamOptions options;
  options.handler = std::move(handler);
  std::shared_ptr<Stream> stream = controller.open_stream(options);
  prime::PrimeService_Stub stub(channel);
  prime::FindPrimesRequest request;
  prime::FindPrimesResponse response;
  stub.FindPrimes(&controller, &request, &response, nullptr);
  return stream;
}

}  // namespace percore::testing
