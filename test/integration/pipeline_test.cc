// Deadline and trace propagation through a two-stage pipeline of real
// percore-server processes over loopback: a client calls pipeline.StageA
// (percore-server --stage-a-next), which calls pipeline.StageB
// (percore-server --stage-b) with the context it inherits. The trace and
// log id set by the client reach B; a slow B cannot keep the client past its
// own deadline; B sees what is left of the client's deadline. And
// Controller::inherit() on its own: a deadline that has passed fails the
// call with 1008 before anything is sent.

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include <percore/base/call_context.h>
#include <percore/client_proxy/channel.h>
#include <percore/client_proxy/controller.h>
#include <percore/proto/error_code.h>
#include <percore/server_io/server.h>
#include "examples/pipeline.pb.h"
#include "examples/pipeline_service.h"
#include "test/support/child_process.h"
#include "test/support/slack.h"

namespace percore {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

constexpr int64_t kTraceId = 0x5eed0000cafe;
constexpr int64_t kSpanId = 77;
constexpr int64_t kLogId = 4242;

std::string address_of(const testing::ServerProcess& server) {
  return "127.0.0.1:" + std::to_string(server.port);
}

ChannelOptions one_group(int timeout_ms) {
  ChannelOptions options;
  options.private_groups = ClientRuntimeOptions{.groups = 1};
  options.timeout_ms = timeout_ms;
  return options;
}

// Stage B, stage A pointed at it, and a client Channel to each. The
// processes are killed (and reaped) by their destructors.
class PipelineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    stage_b_ = testing::start_server_process({"--io-threads", "1", "--workers", "2", "--stage-b"});
    ASSERT_TRUE(stage_b_.has_value());
    stage_a_ = testing::start_server_process(
        {"--io-threads", "1", "--workers", "2", "--stage-a-next", address_of(*stage_b_)});
    ASSERT_TRUE(stage_a_.has_value());
    ASSERT_TRUE(to_a_.Init(address_of(*stage_a_), one_group(2000)));
    ASSERT_TRUE(to_b_.Init(address_of(*stage_b_), one_group(2000)));
  }

  // Process("hello") with B sleeping `delay_ms`, synchronously.
  pipeline::ProcessResponse process(Controller& controller, uint32_t delay_ms) {
    pipeline::ProcessRequest request;
    request.set_text("hello");
    request.set_stage_b_delay_ms(delay_ms);
    pipeline::ProcessResponse response;
    pipeline::StageA_Stub(&to_a_).Process(&controller, &request, &response, nullptr);
    return response;
  }

  // What stage B's Transform calls saw, asked of B directly.
  pipeline::InspectResponse inspect_b() {
    Controller controller;
    pipeline::InspectRequest request;
    pipeline::InspectResponse response;
    pipeline::StageB_Stub(&to_b_).Inspect(&controller, &request, &response, nullptr);
    EXPECT_FALSE(controller.Failed()) << controller.ErrorText();
    return response;
  }

  std::optional<testing::ServerProcess> stage_b_;
  std::optional<testing::ServerProcess> stage_a_;
  Channel to_a_;
  Channel to_b_;
};

TEST_F(PipelineTest, TraceAndLogIdSetByTheClientReachStageB) {
  Controller controller;
  controller.set_timeout_ms(2000);
  controller.set_log_id(kLogId);
  controller.set_trace_id(kTraceId);
  controller.set_span_id(kSpanId);
  const pipeline::ProcessResponse response = process(controller, 0);
  ASSERT_FALSE(controller.Failed()) << controller.ErrorText();
  EXPECT_EQ(response.text(), "A(HELLO)");

  // Stage A's call is the client's span.
  EXPECT_EQ(response.seen().trace_id(), kTraceId);
  EXPECT_EQ(response.seen().span_id(), kSpanId);
  EXPECT_EQ(response.seen().parent_span_id(), 0);
  EXPECT_EQ(response.seen().log_id(), kLogId);
  EXPECT_GT(response.seen().remaining_ms(), 0);
  EXPECT_LE(response.seen().remaining_ms(), 2000);

  // Stage B's call: the same trace and log id, a new span whose parent is A's.
  const pipeline::SeenContext& b = response.stage_b().seen();
  EXPECT_EQ(b.trace_id(), kTraceId);
  EXPECT_EQ(b.log_id(), kLogId);
  EXPECT_EQ(b.parent_span_id(), kSpanId);
  EXPECT_NE(b.span_id(), 0);
  EXPECT_NE(b.span_id(), kSpanId);
  EXPECT_GT(b.remaining_ms(), 0);
  EXPECT_LE(b.remaining_ms(), response.seen().remaining_ms());

  // Without a trace from the client, none is sent, at any stage.
  Controller untraced;
  untraced.set_timeout_ms(2000);
  const pipeline::ProcessResponse plain = process(untraced, 0);
  ASSERT_FALSE(untraced.Failed()) << untraced.ErrorText();
  EXPECT_EQ(plain.seen().trace_id(), 0);
  EXPECT_EQ(plain.seen().span_id(), 0);
  EXPECT_EQ(plain.stage_b().seen().trace_id(), 0);
  EXPECT_EQ(plain.stage_b().seen().span_id(), 0);
  EXPECT_EQ(plain.stage_b().seen().parent_span_id(), 0);
  EXPECT_EQ(plain.stage_b().seen().log_id(), 0);
}

TEST_F(PipelineTest, SlowStageBEndsTheChainByTheClientsDeadline) {
  constexpr int kTimeoutMs = 300;
  Controller controller;
  controller.set_timeout_ms(kTimeoutMs);
  controller.set_trace_id(kTraceId);
  const Clock::time_point started = Clock::now();
  process(controller, 3000);
  const auto elapsed = std::chrono::duration_cast<milliseconds>(Clock::now() - started);
  EXPECT_EQ(controller.ErrorCode(), to_int(ErrorCode::kTimedOut)) << controller.ErrorText();
  EXPECT_LE(elapsed, milliseconds(kTimeoutMs) + testing::scaled(milliseconds(50)));

  // B's handler ran (and sleeps on) with what was left of the client's
  // deadline, never more.
  const pipeline::InspectResponse seen = inspect_b();
  EXPECT_EQ(seen.transform_calls(), 1u);
  EXPECT_GT(seen.last_seen().remaining_ms(), 0);
  EXPECT_LE(seen.last_seen().remaining_ms(), kTimeoutMs);
  EXPECT_EQ(seen.last_seen().trace_id(), kTraceId);
}

TEST_F(PipelineTest, ShortDeadlineSucceedsWhenStageBIsFastEnough) {
  Controller controller;
  controller.set_timeout_ms(300);
  const pipeline::ProcessResponse response = process(controller, 100);
  ASSERT_FALSE(controller.Failed()) << controller.ErrorText();
  EXPECT_EQ(response.text(), "A(HELLO)");
  EXPECT_GT(response.stage_b().seen().remaining_ms(), 0);
  EXPECT_LT(response.stage_b().seen().remaining_ms(), 300);
  EXPECT_LT(response.seen().remaining_ms(), 300);
}

TEST_F(PipelineTest, StageBFailureReachesTheClientWithWhereItHappened) {
  Controller controller;
  controller.set_timeout_ms(2000);
  // B refuses a delay over its maximum with 1003.
  process(controller, examples::StageBServiceImpl::kMaxDelayMs + 1);
  EXPECT_EQ(controller.ErrorCode(), to_int(ErrorCode::kBadRequest)) << controller.ErrorText();
  EXPECT_NE(controller.ErrorText().find("pipeline.StageB/Transform"), std::string::npos)
      << controller.ErrorText();
  EXPECT_NE(controller.ErrorText().find("delay_ms is at most"), std::string::npos)
      << controller.ErrorText();
}

// Controller::inherit() alone, against an in-process stage B that counts
// the calls it sees.
class ControllerInheritTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ServerOptions options;
    options.io_threads = 1;
    options.workers = 1;
    server_ = std::make_unique<Server>(options);
    ASSERT_TRUE(server_->AddService(&stage_b_, examples::StageBServiceImpl::service_options()));
    ASSERT_TRUE(server_->Start("127.0.0.1:0"));
    ASSERT_TRUE(channel_.Init("127.0.0.1:" + std::to_string(server_->port()), one_group(2000)));
  }

  void TearDown() override {
    if (server_ != nullptr)
      server_->Stop(milliseconds(0));
  }

  void transform(Controller& controller) {
    pipeline::TransformRequest request;
    request.set_text("x");
    pipeline::TransformResponse response;
    pipeline::StageB_Stub(&channel_).Transform(&controller, &request, &response, nullptr);
  }

  uint64_t calls_seen() {
    Controller controller;
    pipeline::InspectRequest request;
    pipeline::InspectResponse response;
    pipeline::StageB_Stub(&channel_).Inspect(&controller, &request, &response, nullptr);
    EXPECT_FALSE(controller.Failed()) << controller.ErrorText();
    return response.transform_calls();
  }

  examples::StageBServiceImpl stage_b_;  // Outlives the server.
  std::unique_ptr<Server> server_;
  Channel channel_;
};

TEST_F(ControllerInheritTest, PassedDeadlineFailsWith1008WithoutSending) {
  for (const auto left : {milliseconds(-5), milliseconds(0)}) {
    CallContext context;
    context.deadline = Clock::now() + left;
    context.trace_id = kTraceId;
    Controller controller;
    controller.inherit(context);
    EXPECT_EQ(controller.timeout_ms(), 0);
    const Clock::time_point started = Clock::now();
    transform(controller);
    EXPECT_EQ(controller.ErrorCode(), to_int(ErrorCode::kTimedOut)) << controller.ErrorText();
    EXPECT_LT(Clock::now() - started, testing::scaled(milliseconds(50)));
  }
  // Under 1 ms left counts as passed.
  CallContext almost;
  almost.deadline = Clock::now() + std::chrono::microseconds(900);
  Controller controller;
  controller.inherit(almost);
  transform(controller);
  EXPECT_EQ(controller.ErrorCode(), to_int(ErrorCode::kTimedOut)) << controller.ErrorText();

  // Stage B never saw them: they were never sent.
  EXPECT_EQ(calls_seen(), 0u);
  EXPECT_EQ(channel_.stats().total.ends_by_code[to_int(ErrorCode::kTimedOut)], 3u);
}

TEST_F(ControllerInheritTest, TakesTheTimeLeftLogIdAndTrace) {
  CallContext context;
  context.deadline = Clock::now() + milliseconds(800);
  context.log_id = kLogId;
  context.trace_id = kTraceId;
  context.span_id = kSpanId;
  context.parent_span_id = 5;
  Controller controller;
  controller.inherit(context);
  // Rounded down: never more than what is left.
  EXPECT_GT(controller.timeout_ms(), 500);
  EXPECT_LE(controller.timeout_ms(), 799);
  EXPECT_EQ(controller.log_id(), kLogId);
  EXPECT_EQ(controller.trace_id(), kTraceId);
  EXPECT_EQ(controller.parent_span_id(), kSpanId);
  EXPECT_NE(controller.span_id(), 0);
  EXPECT_NE(controller.span_id(), kSpanId);
  Controller sibling;
  sibling.inherit(context);
  EXPECT_NE(sibling.span_id(), controller.span_id());  // A fresh span per call.

  transform(controller);
  ASSERT_FALSE(controller.Failed()) << controller.ErrorText();
  EXPECT_EQ(calls_seen(), 1u);

  // No deadline: the call keeps its own (here the Channel's); no trace: none.
  Controller untraced;
  untraced.set_trace_id(1);
  untraced.inherit(CallContext{});
  EXPECT_EQ(untraced.timeout_ms(), Controller::kChannelTimeout);
  EXPECT_EQ(untraced.trace_id(), 0);
  EXPECT_EQ(untraced.span_id(), 0);
  EXPECT_EQ(untraced.parent_span_id(), 0);
}

TEST(CallContextTest, RemainingTimeoutIsRoundedDownInMilliseconds) {
  const Clock::time_point now = Clock::now();
  CallContext context;
  EXPECT_FALSE(context.has_deadline());
  EXPECT_EQ(context.remaining_timeout_ms(now), -1);
  context.deadline = now + std::chrono::microseconds(1999);
  EXPECT_EQ(context.remaining_timeout_ms(now), 1);
  context.deadline = now + std::chrono::microseconds(999);
  EXPECT_EQ(context.remaining_timeout_ms(now), 0);
  context.deadline = now - milliseconds(1);
  EXPECT_EQ(context.remaining_timeout_ms(now), 0);
  context.deadline = now + std::chrono::hours(24 * 365);
  EXPECT_EQ(context.remaining_timeout_ms(now), std::numeric_limits<int32_t>::max());
}

}  // namespace
}  // namespace percore
