#include <percore/client_proxy/detail/outlier_detector.h>

#include <gtest/gtest.h>

#include <vector>

namespace percore::detail {
namespace {

using Clock = OutlierDetector::Clock;
using Health = OutlierDetector::ServerHealth;
using std::chrono::milliseconds;

OutlierDetector::Options options() {
  OutlierDetector::Options o;
  o.consecutive_errors = 3;
  o.base_ejection_time_ms = 100;
  o.max_ejection_time_ms = 350;
  o.max_ejection_percent = 10;
  return o;
}

TEST(OutlierDetectorTest, EjectsAfterConsecutiveErrorsOnly) {
  OutlierDetector detector(options());
  Health server;
  const Clock::time_point now{};
  EXPECT_FALSE(detector.on_error(server, false, false, 4, now));
  EXPECT_FALSE(detector.on_error(server, false, false, 4, now));
  // Bytes came in between: the count starts again.
  EXPECT_FALSE(detector.on_error(server, true, false, 4, now));
  EXPECT_FALSE(detector.on_error(server, false, false, 4, now));
  EXPECT_TRUE(detector.on_error(server, false, false, 4, now));
  EXPECT_EQ(server.state, Health::State::kEjected);
  EXPECT_EQ(server.ejected_until, now + milliseconds(100));
  EXPECT_EQ(detector.ejected(), 1);
  // Errors of calls placed before the ejection change nothing.
  EXPECT_FALSE(detector.on_error(server, false, false, 4, now));
  EXPECT_EQ(detector.ejected(), 1);
}

TEST(OutlierDetectorTest, ADeadConnectionEjectsAtOnce) {
  OutlierDetector detector(options());
  Health server;
  EXPECT_TRUE(detector.on_error(server, true, true, 2, Clock::time_point{}));
}

TEST(OutlierDetectorTest, NeverEjectsMoreThanTheShareAndNeverTheLast) {
  OutlierDetector detector(options());
  std::vector<Health> servers(3);
  const Clock::time_point now{};
  // 10% of 3 is less than one: at least one may go, never two.
  EXPECT_TRUE(detector.on_error(servers[0], false, true, 3, now));
  EXPECT_FALSE(detector.on_error(servers[1], false, true, 3, now));
  EXPECT_EQ(servers[1].state, Health::State::kInRotation);
  // A lone server is never ejected: there is nothing better.
  OutlierDetector alone(options());
  Health only;
  EXPECT_FALSE(alone.on_error(only, false, true, 1, now));
  // Half of twenty may go.
  OutlierDetector::Options half = options();
  half.max_ejection_percent = 50;
  OutlierDetector many(half);
  std::vector<Health> twenty(20);
  int ejected = 0;
  for (Health& each : twenty)
    ejected += many.on_error(each, false, true, 20, now) ? 1 : 0;
  EXPECT_EQ(ejected, 10);
}

TEST(OutlierDetectorTest, ProbeReadmitsOrEjectsForLonger) {
  OutlierDetector detector(options());
  Health server;
  Clock::time_point now{};
  ASSERT_TRUE(detector.on_error(server, false, true, 4, now));
  EXPECT_FALSE(detector.start_probe(server, now + milliseconds(99)));
  ASSERT_TRUE(detector.start_probe(server, now + milliseconds(100)));
  EXPECT_EQ(server.state, Health::State::kProbing);
  now += milliseconds(100);
  detector.probe_failed(server, now);
  EXPECT_EQ(server.state, Health::State::kEjected);
  EXPECT_EQ(server.ejected_until, now + milliseconds(200));  // Doubled.
  ASSERT_TRUE(detector.start_probe(server, now + milliseconds(200)));
  now += milliseconds(200);
  detector.probe_failed(server, now);
  EXPECT_EQ(server.ejected_until, now + milliseconds(350));  // Capped.
  ASSERT_TRUE(detector.start_probe(server, now + milliseconds(350)));
  now += milliseconds(350);
  detector.readmit(server, now);
  EXPECT_EQ(server.state, Health::State::kInRotation);
  EXPECT_EQ(detector.ejected(), 0);
  // Ejected again soon: longer still. After a quiet spell as long as the
  // last ejection: from the base again.
  ASSERT_TRUE(detector.on_error(server, false, true, 4, now + milliseconds(10)));
  EXPECT_EQ(server.last_ejection_time, milliseconds(350));
  ASSERT_TRUE(detector.start_probe(server, server.ejected_until));
  now = server.ejected_until;
  detector.readmit(server, now);
  ASSERT_TRUE(detector.on_error(server, false, true, 4, now + milliseconds(400)));
  EXPECT_EQ(server.last_ejection_time, milliseconds(100));
}

TEST(OutlierDetectorTest, ForgettingAnEjectedServerFreesItsShare) {
  OutlierDetector detector(options());
  Health first;
  Health second;
  ASSERT_TRUE(detector.on_error(first, false, true, 3, Clock::time_point{}));
  detector.forget(first);
  EXPECT_EQ(detector.ejected(), 0);
  EXPECT_TRUE(detector.on_error(second, false, true, 3, Clock::time_point{}));
}

TEST(OutlierDetectorTest, AShrinkingListLeavesTooManyOut) {
  OutlierDetector::Options half = options();
  half.max_ejection_percent = 50;
  OutlierDetector detector(half);
  Health first;
  Health second;
  ASSERT_TRUE(detector.on_error(first, false, true, 4, Clock::time_point{}));
  ASSERT_TRUE(detector.on_error(second, false, true, 4, Clock::time_point{}));
  EXPECT_FALSE(detector.over_share(4));
  EXPECT_TRUE(detector.over_share(2));  // One of two at most.
  detector.readmit(first, Clock::time_point{});
  EXPECT_FALSE(detector.over_share(2));
  EXPECT_TRUE(detector.over_share(1));  // Never the last.
}

TEST(OutlierDetectorTest, OffWhenConsecutiveErrorsIsZero) {
  OutlierDetector::Options off = options();
  off.consecutive_errors = 0;
  OutlierDetector detector(off);
  Health server;
  for (int i = 0; i < 100; ++i)
    EXPECT_FALSE(detector.on_error(server, false, true, 4, Clock::time_point{}));
}

}  // namespace
}  // namespace percore::detail
