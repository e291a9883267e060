#include <percore/discovery/subsetting.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

namespace percore {
namespace {

// Servers 10.0.0.1 .. 10.0.0.<count>, port 8000, in that order.
std::vector<ServerAddress> make_servers(int count) {
  std::vector<ServerAddress> servers;
  for (int i = 1; i <= count; ++i)
    servers.push_back(ServerAddress{"10.0.0." + std::to_string(i), 8000});
  return servers;
}

std::vector<ServerAddress> sorted(std::vector<ServerAddress> servers) {
  std::sort(servers.begin(), servers.end());
  return servers;
}

bool all_distinct(const std::vector<ServerAddress>& servers) {
  return std::set<ServerAddress>(servers.begin(), servers.end()).size() == servers.size();
}

// --- the PRNG ------------------------------------------------------------------

TEST(SplitMix64Test, MatchesTheReferenceSequence) {
  // The first outputs of Vigna's splitmix64.c from state 0.
  SplitMix64 random(0);
  EXPECT_EQ(random.next(), 0xe220a8397b1dcdafULL);
  EXPECT_EQ(random.next(), 0x6e789e6aa1b965f4ULL);
  EXPECT_EQ(random.next(), 0x06c45d188009454fULL);
}

TEST(SplitMix64Test, BelowStaysInRange) {
  SplitMix64 random(42);
  for (uint64_t bound : {1ULL, 2ULL, 3ULL, 7ULL, 1000ULL, (1ULL << 63) + 1}) {
    for (int i = 0; i < 1000; ++i)
      ASSERT_LT(random.below(bound), bound);
  }
}

TEST(SplitMix64Test, ShuffleIsAPermutation) {
  std::vector<ServerAddress> servers = make_servers(50);
  deterministic_shuffle(servers, 7);
  EXPECT_EQ(sorted(servers), sorted(make_servers(50)));
  EXPECT_NE(servers, make_servers(50));
}

// --- subsets -------------------------------------------------------------------

TEST(SubsettingTest, SubsettingIdsOfGroupsAreConsecutive) {
  EXPECT_EQ(subsetting_id(0, 10, 0), 0u);
  EXPECT_EQ(subsetting_id(0, 10, 9), 9u);
  EXPECT_EQ(subsetting_id(1, 10, 0), 10u);
  EXPECT_EQ(subsetting_id(2, 10, 9), 29u);
  EXPECT_EQ(subsetting_id(7, 4, 3), 31u);
}

TEST(SubsettingTest, ThirtyGroupsOverNineServersAreExactlyEven) {
  const std::vector<ServerAddress> servers = make_servers(9);
  std::map<ServerAddress, int> connections;
  std::set<uint64_t> ids;
  for (uint64_t client = 0; client < 3; ++client) {
    for (int group = 0; group < 10; ++group) {
      const uint64_t id = subsetting_id(client, 10, group);
      ids.insert(id);
      const std::vector<ServerAddress> subset = deterministic_subset(servers, id, 3);
      ASSERT_EQ(subset.size(), 3u) << "id " << id;  // 3 servers per group
      EXPECT_TRUE(all_distinct(subset)) << "id " << id;
      for (const ServerAddress& server : subset)
        ++connections[server];
    }
  }
  EXPECT_EQ(ids.size(), 30u);
  EXPECT_EQ(*ids.rbegin(), 29u);
  ASSERT_EQ(connections.size(), 9u);
  for (const auto& [server, count] : connections)
    EXPECT_EQ(count, 10) << server.to_string();
}

TEST(SubsettingTest, EachRoundCoversEveryServerOnce) {
  const std::vector<ServerAddress> servers = make_servers(12);
  for (uint64_t round = 0; round < 20; ++round) {
    std::vector<ServerAddress> used;
    for (uint64_t slice = 0; slice < 3; ++slice) {
      const std::vector<ServerAddress> subset = deterministic_subset(servers, round * 3 + slice, 4);
      used.insert(used.end(), subset.begin(), subset.end());
    }
    EXPECT_EQ(sorted(used), sorted(servers)) << "round " << round;
  }
}

TEST(SubsettingTest, InputOrderDoesNotMatter) {
  const std::vector<ServerAddress> servers = make_servers(9);
  std::vector<ServerAddress> reversed(servers.rbegin(), servers.rend());
  std::vector<ServerAddress> shuffled = servers;
  std::mt19937 generator(12345);  // any order will do; this one is fixed
  std::shuffle(shuffled.begin(), shuffled.end(), generator);
  for (uint64_t id = 0; id < 60; ++id) {
    const std::vector<ServerAddress> expected = deterministic_subset(servers, id, 3);
    EXPECT_EQ(deterministic_subset(reversed, id, 3), expected) << "id " << id;
    EXPECT_EQ(deterministic_subset(shuffled, id, 3), expected) << "id " << id;
  }
}

TEST(SubsettingTest, SubsetsArePinned) {
  // Computed once from the algorithm as documented (SplitMix64, Fisher–Yates
  // from the top, rejection sampling) by an independent implementation.
  // If these move, every deployed client's subset moves with them.
  const std::vector<ServerAddress> nine = make_servers(9);
  EXPECT_EQ(
      deterministic_subset(nine, 0, 3),
      (std::vector<ServerAddress>{{"10.0.0.2", 8000}, {"10.0.0.1", 8000}, {"10.0.0.4", 8000}}));
  EXPECT_EQ(
      deterministic_subset(nine, 1, 3),
      (std::vector<ServerAddress>{{"10.0.0.6", 8000}, {"10.0.0.7", 8000}, {"10.0.0.9", 8000}}));
  EXPECT_EQ(
      deterministic_subset(nine, 2, 3),
      (std::vector<ServerAddress>{{"10.0.0.3", 8000}, {"10.0.0.5", 8000}, {"10.0.0.8", 8000}}));
  EXPECT_EQ(
      deterministic_subset(nine, 7, 3),
      (std::vector<ServerAddress>{{"10.0.0.4", 8000}, {"10.0.0.9", 8000}, {"10.0.0.7", 8000}}));
  EXPECT_EQ(
      deterministic_subset(nine, 29, 3),
      (std::vector<ServerAddress>{{"10.0.0.7", 8000}, {"10.0.0.3", 8000}, {"10.0.0.5", 8000}}));
  // Sorted as text: "10.0.0.10" comes between "10.0.0.1" and "10.0.0.2".
  const std::vector<ServerAddress> ten = make_servers(10);
  EXPECT_EQ(
      deterministic_subset(ten, 0, 3),
      (std::vector<ServerAddress>{{"10.0.0.6", 8000}, {"10.0.0.3", 8000}, {"10.0.0.2", 8000}}));
  EXPECT_EQ(
      deterministic_subset(ten, 1000, 3),
      (std::vector<ServerAddress>{{"10.0.0.5", 8000}, {"10.0.0.9", 8000}, {"10.0.0.3", 8000}}));
}

TEST(SubsettingTest, SubsetSizeZeroOrTooLargeGivesAllServersSorted) {
  const std::vector<ServerAddress> servers = make_servers(9);
  const std::vector<ServerAddress> reversed(servers.rbegin(), servers.rend());
  for (size_t size : {size_t{0}, size_t{9}, size_t{10}, size_t{1000}}) {
    for (uint64_t id : {0ULL, 5ULL, 12345ULL}) {
      EXPECT_EQ(deterministic_subset(reversed, id, size), sorted(servers))
          << "size " << size << " id " << id;
    }
  }
  EXPECT_TRUE(deterministic_subset({}, 3, 2).empty());
  EXPECT_TRUE(deterministic_subset({}, 3, 0).empty());
}

TEST(SubsettingTest, DuplicatesCountOnce) {
  std::vector<ServerAddress> servers = make_servers(4);
  servers.push_back(servers[0]);
  servers.push_back(servers[2]);
  EXPECT_EQ(deterministic_subset(servers, 0, 4), sorted(make_servers(4)));
  const std::vector<ServerAddress> subset = deterministic_subset(servers, 1, 2);
  EXPECT_TRUE(all_distinct(subset));
  EXPECT_EQ(subset, deterministic_subset(make_servers(4), 1, 2));
}

TEST(SubsettingTest, ServerCountNotAMultipleOfSubsetSize) {
  // 10 servers, subsets of 3: 3 subsets a round, one server left over (a
  // different one each round, chosen by the shuffle).
  const std::vector<ServerAddress> servers = make_servers(10);
  std::map<ServerAddress, int> connections;
  std::set<ServerAddress> left_over_somewhere;
  for (uint64_t round = 0; round < 100; ++round) {
    std::set<ServerAddress> used_this_round;
    for (uint64_t slice = 0; slice < 3; ++slice) {
      const std::vector<ServerAddress> subset = deterministic_subset(servers, round * 3 + slice, 3);
      ASSERT_EQ(subset.size(), 3u);
      EXPECT_TRUE(all_distinct(subset));
      for (const ServerAddress& server : subset) {
        EXPECT_TRUE(used_this_round.insert(server).second) << "round " << round;
        ++connections[server];
      }
    }
    EXPECT_EQ(used_this_round.size(), 9u);
    for (const ServerAddress& server : servers) {
      if (used_this_round.count(server) == 0)
        left_over_somewhere.insert(server);
    }
  }
  EXPECT_EQ(connections.size(), 10u);         // every server is used by some id
  EXPECT_GT(left_over_somewhere.size(), 1u);  // the leftover moves between rounds
}

TEST(SubsettingTest, HugeIdsWork) {
  const std::vector<ServerAddress> servers = make_servers(9);
  for (uint64_t id : {UINT64_MAX, UINT64_MAX - 1, uint64_t{1} << 63}) {
    const std::vector<ServerAddress> subset = deterministic_subset(servers, id, 3);
    EXPECT_EQ(subset.size(), 3u);
    EXPECT_TRUE(all_distinct(subset));
  }
}

}  // namespace
}  // namespace percore
