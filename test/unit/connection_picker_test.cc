#include <percore/client_proxy/detail/connection_picker.h>

#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <vector>

namespace percore {
namespace {

using detail::BalancerCandidate;
using detail::ConnectionPicker;

std::vector<BalancerCandidate> candidates_with_outstanding(const std::vector<int>& outstanding) {
  std::vector<BalancerCandidate> candidates;
  for (size_t i = 0; i < outstanding.size(); ++i)
    candidates.push_back(BalancerCandidate{100 + i, outstanding[i]});
  return candidates;
}

// Picks once, recording which candidates the picker looked at.
struct RecordedPick {
  int chosen;
  std::vector<size_t> looked_at;
};

RecordedPick pick_recorded(ConnectionPicker& picker, const std::vector<BalancerCandidate>& list,
                           uint64_t avoid_server = 0) {
  RecordedPick pick{-1, {}};
  pick.chosen = picker.pick(
      list.size(),
      [&](size_t index) {
        pick.looked_at.push_back(index);
        return list.at(index);  // at(): an index out of range fails the test.
      },
      avoid_server);
  return pick;
}

std::vector<int> pick_counts(ConnectionPicker& picker, const std::vector<BalancerCandidate>& list,
                             int picks, uint64_t avoid_server = 0) {
  std::vector<int> counts(list.size(), 0);
  for (int i = 0; i < picks; ++i) {
    const int chosen = pick_recorded(picker, list, avoid_server).chosen;
    EXPECT_GE(chosen, 0);
    EXPECT_LT(chosen, static_cast<int>(list.size()));
    if (chosen >= 0 && chosen < static_cast<int>(list.size()))
      ++counts[chosen];
  }
  return counts;
}

// --- Power of two choices ----------------------------------------------------

// Of the 6 pairs of 4 candidates, 3 contain the idle one, and it wins them
// all: it takes half the picks (not a quarter, not all).
TEST(ConnectionPickerTest, TwoChoicesPicksTheIdleCandidateAboutHalfTheTime) {
  ConnectionPicker picker(LoadBalancer::kPowerOfTwoChoices, 12345);
  const auto list = candidates_with_outstanding({0, 100, 100, 100});
  constexpr int kPicks = 10000;
  const std::vector<int> counts = pick_counts(picker, list, kPicks);
  EXPECT_GE(counts[0], kPicks * 40 / 100);
  EXPECT_LE(counts[0], kPicks * 60 / 100);
  // The busy ones share the rest; each gets some.
  for (size_t i = 1; i < counts.size(); ++i)
    EXPECT_GT(counts[i], 0) << "candidate " << i;
}

TEST(ConnectionPickerTest, TwoChoicesNeverLetsTheBusierOfAPairWin) {
  ConnectionPicker picker(LoadBalancer::kPowerOfTwoChoices, 99);
  const auto list = candidates_with_outstanding({0, 100, 100, 100});
  int picks_with_the_idle_one_looked_at = 0;
  for (int i = 0; i < 10000; ++i) {
    const RecordedPick pick = pick_recorded(picker, list);
    ASSERT_EQ(pick.looked_at.size(), 2u) << "pick " << i;
    // Two distinct candidates, and the chosen one is one of them.
    ASSERT_NE(pick.looked_at[0], pick.looked_at[1]) << "pick " << i;
    ASSERT_TRUE(static_cast<size_t>(pick.chosen) == pick.looked_at[0] ||
                static_cast<size_t>(pick.chosen) == pick.looked_at[1])
        << "pick " << i;
    if (pick.looked_at[0] == 0 || pick.looked_at[1] == 0) {
      ++picks_with_the_idle_one_looked_at;
      ASSERT_EQ(pick.chosen, 0) << "pick " << i;
    }
  }
  EXPECT_GT(picks_with_the_idle_one_looked_at, 0);
}

TEST(ConnectionPickerTest, TwoChoicesOfTwoAlwaysTakesTheLessBusy) {
  for (uint64_t seed : {0ull, 1ull, 7ull, 0xDEADBEEFull}) {
    ConnectionPicker picker(LoadBalancer::kPowerOfTwoChoices, seed);
    EXPECT_EQ(pick_counts(picker, candidates_with_outstanding({0, 100}), 1000),
              (std::vector<int>{1000, 0}))
        << "seed " << seed;
    EXPECT_EQ(pick_counts(picker, candidates_with_outstanding({100, 0}), 1000),
              (std::vector<int>{0, 1000}))
        << "seed " << seed;
    // A difference of one is enough.
    EXPECT_EQ(pick_counts(picker, candidates_with_outstanding({4, 3}), 1000),
              (std::vector<int>{0, 1000}))
        << "seed " << seed;
  }
}

// With equal loads every candidate gets picked: the two choices are random
// and distinct, not stuck on one index (seed 0 included: a xorshift state of
// 0 would never move).
TEST(ConnectionPickerTest, TwoChoicesWithEqualLoadsSpreadsOverAll) {
  for (uint64_t seed : {0ull, 1ull, 42ull}) {
    ConnectionPicker picker(LoadBalancer::kPowerOfTwoChoices, seed);
    const std::vector<int> counts =
        pick_counts(picker, candidates_with_outstanding({5, 5, 5}), 3000);
    for (size_t i = 0; i < counts.size(); ++i) {
      EXPECT_GT(counts[i], 3000 / 3 / 2) << "seed " << seed << " candidate " << i;
    }
  }
}

TEST(ConnectionPickerTest, TwoChoicesLooksAtTwoDistinctCandidates) {
  ConnectionPicker picker(LoadBalancer::kPowerOfTwoChoices, 5);
  for (size_t count : {2u, 3u, 5u, 16u}) {
    std::vector<BalancerCandidate> list;
    for (size_t i = 0; i < count; ++i)
      list.push_back(BalancerCandidate{1 + i, 1});
    for (int i = 0; i < 2000; ++i) {
      const RecordedPick pick = pick_recorded(picker, list);
      ASSERT_EQ(pick.looked_at.size(), 2u);
      ASSERT_NE(pick.looked_at[0], pick.looked_at[1]) << "count " << count << " pick " << i;
    }
  }
}

TEST(ConnectionPickerTest, SameSeedGivesTheSameSequence) {
  ConnectionPicker first(LoadBalancer::kPowerOfTwoChoices, 2024);
  ConnectionPicker second(LoadBalancer::kPowerOfTwoChoices, 2024);
  const auto list = candidates_with_outstanding({3, 3, 3, 3, 3, 3});
  for (int i = 0; i < 500; ++i)
    ASSERT_EQ(pick_recorded(first, list).chosen, pick_recorded(second, list).chosen) << i;
}

// --- Round robin -------------------------------------------------------------

TEST(ConnectionPickerTest, RoundRobinCycles) {
  ConnectionPicker picker(LoadBalancer::kRoundRobin, 1);
  // Loads do not matter to round robin.
  const auto list = candidates_with_outstanding({100, 0, 50});
  std::vector<int> order;
  for (int i = 0; i < 9; ++i)
    order.push_back(pick_recorded(picker, list).chosen);
  EXPECT_EQ(order, (std::vector<int>{0, 1, 2, 0, 1, 2, 0, 1, 2}));
}

TEST(ConnectionPickerTest, SingleCandidateIsAlwaysPicked) {
  for (LoadBalancer policy : {LoadBalancer::kPowerOfTwoChoices, LoadBalancer::kRoundRobin}) {
    ConnectionPicker picker(policy, 3);
    const auto list = candidates_with_outstanding({7});
    for (int i = 0; i < 10; ++i)
      EXPECT_EQ(pick_recorded(picker, list).chosen, 0);
  }
}

// --- Avoiding a server (a call sent again) ---------------------------------

TEST(ConnectionPickerTest, AvoidServerSkipsItsConnections) {
  for (LoadBalancer policy : {LoadBalancer::kPowerOfTwoChoices, LoadBalancer::kRoundRobin}) {
    ConnectionPicker picker(policy, 17);
    // Two connections to server 1 (one idle), one busy connection to server 2.
    const std::vector<BalancerCandidate> list = {{1, 0}, {1, 0}, {2, 100}};
    for (int i = 0; i < 200; ++i) {
      const RecordedPick pick = pick_recorded(picker, list, /*avoid_server=*/1);
      ASSERT_EQ(pick.chosen, 2) << "policy " << static_cast<int>(policy) << " pick " << i;
    }
  }
}

TEST(ConnectionPickerTest, AvoidServerSpreadsOverTheOtherServers) {
  ConnectionPicker picker(LoadBalancer::kRoundRobin, 1);
  const std::vector<BalancerCandidate> list = {{1, 0}, {2, 0}, {3, 0}, {4, 0}};
  const std::vector<int> counts = pick_counts(picker, list, 400, /*avoid_server=*/2);
  EXPECT_EQ(counts[1], 0);
  EXPECT_GT(counts[0], 0);
  EXPECT_GT(counts[2], 0);
  EXPECT_GT(counts[3], 0);
}

TEST(ConnectionPickerTest, AvoidServerIsPickedWhenItIsTheOnlyOne) {
  for (LoadBalancer policy : {LoadBalancer::kPowerOfTwoChoices, LoadBalancer::kRoundRobin}) {
    ConnectionPicker picker(policy, 23);
    EXPECT_EQ(pick_recorded(picker, {{9, 0}}, /*avoid_server=*/9).chosen, 0);
    // Every connection goes to the avoided server: still one of them.
    const std::vector<BalancerCandidate> list = {{9, 0}, {9, 5}, {9, 1}};
    for (int i = 0; i < 50; ++i) {
      const int chosen = pick_recorded(picker, list, /*avoid_server=*/9).chosen;
      EXPECT_GE(chosen, 0);
      EXPECT_LT(chosen, 3);
    }
  }
}

TEST(ConnectionPickerTest, AvoidServerOfNoCandidateChangesNothing) {
  ConnectionPicker plain(LoadBalancer::kPowerOfTwoChoices, 77);
  ConnectionPicker avoiding(LoadBalancer::kPowerOfTwoChoices, 77);
  const auto list = candidates_with_outstanding({3, 1, 4, 1, 5});  // Servers 100..104.
  for (int i = 0; i < 500; ++i) {
    ASSERT_EQ(pick_recorded(plain, list).chosen,
              pick_recorded(avoiding, list, /*avoid_server=*/999).chosen)
        << i;
  }
}

// --- No candidates -------------------------------------------------------------

TEST(ConnectionPickerTest, NoCandidatesGivesMinusOne) {
  for (LoadBalancer policy : {LoadBalancer::kPowerOfTwoChoices, LoadBalancer::kRoundRobin}) {
    ConnectionPicker picker(policy, 1);
    const std::vector<BalancerCandidate> empty;
    EXPECT_EQ(pick_recorded(picker, empty).chosen, -1);
    const RecordedPick avoiding = pick_recorded(picker, empty, /*avoid_server=*/5);
    EXPECT_EQ(avoiding.chosen, -1);
    EXPECT_TRUE(avoiding.looked_at.empty());
  }
}

}  // namespace
}  // namespace percore
