#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>

#include <percore/proto/prime.pb.h>

namespace percore::examples {

// True if `number` is prime, by trial division: deliberately CPU-heavy
// (32416190071 takes about 90,000 divisions).
bool is_prime(uint64_t number);
// The same, giving up (returning false) once `stop` is set: checked every
// million divisions or so.
bool is_prime(uint64_t number, const std::atomic<bool>& stop);

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
  // Accepts the stream attached to the call (1003 without one) and serves
  // it: each PrimeChunk is tested on a thread of the stream's own (the
  // stream's handler runs on an I/O thread, which must not compute), its
  // primes written back as found, then a summary, then CLOSE. Chunks wait in
  // a queue of at most kMaxQueuedChunkBytes; a client that runs further
  // ahead gets a summary with an error and the stream is closed. At most
  // kMaxFindPrimesStreams are served at once (2004 past it), so threads and
  // memory stay bounded; a stream that ends stops its computation within a
  // million divisions. Register it on threads (kInline or kWorkerPool): a
  // process-pool handler cannot accept a stream yet.
  void FindPrimes(google::protobuf::RpcController* controller,
                  const prime::FindPrimesRequest* request, prime::FindPrimesResponse* response,
                  google::protobuf::Closure* done) override;
  static constexpr size_t kMaxQueuedChunkBytes = 8u << 20;
  static constexpr int kMaxFindPrimesStreams = 64;

 private:
  const bool allow_faults_;
  // FindPrimes streams being served; shared with their threads, which may
  // outlive the service object by a chunk.
  const std::shared_ptr<std::atomic<int>> find_primes_streams_ =
      std::make_shared<std::atomic<int>>(0);
};

}  // namespace percore::examples
