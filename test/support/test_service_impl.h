#pragma once

#include <atomic>
#include <mutex>
#include <set>

#include "test/proto/test_service.pb.h"

namespace percore::testing {

// percore.test.TestService with counters the tests assert on.
// Threads: any; the counters are atomic or locked.
class TestServiceImpl : public percore::test::TestService {
 public:
  void Sleep(google::protobuf::RpcController* controller,
             const percore::test::SleepRequest* request, percore::test::SleepResponse* response,
             google::protobuf::Closure* done) override;
  void Fail(google::protobuf::RpcController* controller, const percore::test::FailRequest* request,
            percore::test::FailResponse* response, google::protobuf::Closure* done) override;
  void WhoAmI(google::protobuf::RpcController* controller,
              const percore::test::WhoAmIRequest* request, percore::test::WhoAmIResponse* response,
              google::protobuf::Closure* done) override;

  void Bulk(google::protobuf::RpcController* controller, const percore::test::BulkRequest* request,
            percore::test::BulkResponse* response, google::protobuf::Closure* done) override;

  int sleeps_started() const { return sleeps_started_.load(); }
  int max_concurrent_sleeps() const { return max_concurrent_sleeps_.load(); }
  // Tags of every Sleep handler that ran.
  std::set<uint64_t> sleep_tags() const;

 private:
  std::atomic<int> sleeps_started_{0};
  std::atomic<int> concurrent_sleeps_{0};
  std::atomic<int> max_concurrent_sleeps_{0};
  mutable std::mutex mutex_;
  std::set<uint64_t> sleep_tags_;
};

}  // namespace percore::testing
