#include <percore/client_proxy/detail/retry_budget.h>

#include <gtest/gtest.h>

namespace percore::detail {
namespace {

using Clock = RetryBudget::Clock;
using std::chrono::milliseconds;
using std::chrono::seconds;

Clock::time_point at(seconds s, milliseconds ms = milliseconds(0)) {
  return Clock::time_point(s + ms);
}

TEST(RetryBudgetTest, AllowsTheFloorWithNoCalls) {
  RetryBudget budget(20, 10);
  const Clock::time_point now = at(seconds(1000));
  EXPECT_EQ(budget.allowed(now), 100u);  // 10 a second over 10 seconds.
  for (int i = 0; i < 100; ++i) {
    ASSERT_TRUE(budget.has_room(now)) << i;
    budget.spend(now);
  }
  EXPECT_FALSE(budget.has_room(now));
}

TEST(RetryBudgetTest, AllowsAShareOfTheCallsOnTopOfTheFloor) {
  RetryBudget budget(20, 0);
  const Clock::time_point now = at(seconds(1000), milliseconds(500));
  for (int i = 0; i < 1000; ++i)
    budget.on_call(now);
  EXPECT_EQ(budget.allowed(now), 200u);
  for (int i = 0; i < 200; ++i)
    budget.spend(now);
  EXPECT_FALSE(budget.has_room(now));
  // Five more calls deposit one more retry.
  for (int i = 0; i < 5; ++i)
    budget.on_call(now);
  EXPECT_TRUE(budget.has_room(now));
}

TEST(RetryBudgetTest, ForgetsWhatIsOlderThanTheWindow) {
  RetryBudget budget(10, 0);
  for (int i = 0; i < 100; ++i)
    budget.on_call(at(seconds(1000)));
  for (int i = 0; i < 10; ++i)
    budget.spend(at(seconds(1000)));
  EXPECT_FALSE(budget.has_room(at(seconds(1005))));
  // Ten seconds later, both the calls and the retries have left the window.
  EXPECT_EQ(budget.allowed(at(seconds(1010))), 0u);
  EXPECT_EQ(budget.spent(at(seconds(1010))), 0u);
  // A call made a little before the current second (its thread read the
  // clock earlier) counts in the current second.
  budget.on_call(at(seconds(1009), milliseconds(999)));
  EXPECT_EQ(budget.allowed(at(seconds(1010))), 0u);  // 10% of 1 call.
  for (int i = 0; i < 9; ++i)
    budget.on_call(at(seconds(1010)));
  EXPECT_EQ(budget.allowed(at(seconds(1010))), 1u);
}

TEST(RetryBudgetTest, ZeroBudgetAllowsNoRetry) {
  RetryBudget budget(0, 0);
  for (int i = 0; i < 1000; ++i)
    budget.on_call(at(seconds(7)));
  EXPECT_FALSE(budget.has_room(at(seconds(7))));
}

}  // namespace
}  // namespace percore::detail
