#include "test/support/test_service_impl.h"

#include <functional>
#include <thread>

#include <percore/server_io/server_controller.h>

namespace percore::testing {

void TestServiceImpl::Sleep(google::protobuf::RpcController*,
                            const percore::test::SleepRequest* request,
                            percore::test::SleepResponse* response,
                            google::protobuf::Closure* done) {
  sleeps_started_.fetch_add(1);
  {
    std::lock_guard lock(mutex_);
    sleep_tags_.insert(request->tag());
  }
  const int concurrent = concurrent_sleeps_.fetch_add(1) + 1;
  int max = max_concurrent_sleeps_.load();
  while (concurrent > max && !max_concurrent_sleeps_.compare_exchange_weak(max, concurrent)) {
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(request->milliseconds()));
  concurrent_sleeps_.fetch_sub(1);
  response->set_tag(request->tag());
  done->Run();
}

void TestServiceImpl::Fail(google::protobuf::RpcController* controller,
                           const percore::test::FailRequest* request, percore::test::FailResponse*,
                           google::protobuf::Closure* done) {
  auto* server_controller = static_cast<ServerController*>(controller);
  if (request->code() == 0) {
    server_controller->SetFailed(request->text());
  } else {
    server_controller->SetFailed(static_cast<ErrorCode>(request->code()), request->text());
  }
  done->Run();
}

void TestServiceImpl::WhoAmI(google::protobuf::RpcController*, const percore::test::WhoAmIRequest*,
                             percore::test::WhoAmIResponse* response,
                             google::protobuf::Closure* done) {
  response->set_thread_hash(std::hash<std::thread::id>()(std::this_thread::get_id()));
  done->Run();
}

void TestServiceImpl::Bulk(google::protobuf::RpcController*, const percore::test::BulkRequest* request,
                           percore::test::BulkResponse* response,
                           google::protobuf::Closure* done) {
  response->mutable_payload()->assign(request->bytes(), 'b');
  done->Run();
}

std::set<uint64_t> TestServiceImpl::sleep_tags() const {
  std::lock_guard lock(mutex_);
  return sleep_tags_;
}

}  // namespace percore::testing
