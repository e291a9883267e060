#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include <percore/discovery/server_address.h>

namespace percore {

// SplitMix64 (Steele, Lea and Flood; Vigna's reference splitmix64.c): a
// 64-bit state advanced by a fixed odd constant and hashed on output. Tiny,
// fast, and fully specified here, so a subset never moves because a standard
// library changed its engines or distributions. Not for anything secret.
//
// A plain value: one thread at a time.
class SplitMix64 {
 public:
  explicit SplitMix64(uint64_t seed) : state_(seed) {}

  uint64_t next();
  // Uniform in [0, bound) for bound >= 1, without modulo bias (rejection of
  // the low values that would make some results more likely).
  uint64_t below(uint64_t bound);

 private:
  uint64_t state_;
};

// Fisher–Yates shuffle driven by SplitMix64 (std::shuffle's result is
// implementation-defined). Same seed and input, same order, everywhere.
void deterministic_shuffle(std::vector<ServerAddress>& servers, uint64_t seed);

// Deterministic subsetting, from Google's SRE book ("Load Balancing in the
// Datacenter"): which `subset_size` servers the client (here: thread group)
// with `subsetting_id` connects to.
//
// The servers are sorted (and duplicates dropped) so that every client sees
// the same list whatever order discovery gave it. Clients are taken in
// rounds of subset_count = servers / subset_size: round r =
// subsetting_id / subset_count shuffles the sorted list with seed r, and the
// client takes slice subsetting_id % subset_count of it.
//
// Evenness: within one round the subsets are disjoint, so when the ids in
// use are contiguous (0..N-1), connections per server differ by at most one
// per round (e.g. 30 ids, 9 servers, subsets of 3: exactly 10 each). When
// the server count is not a multiple of subset_size, the leftover
// servers % subset_size servers of each round's shuffle are unused in that
// round; the shuffle changes which ones from round to round, so over many
// rounds every server gets its share, but a single round is uneven by up to
// one subset's worth.
//
// subset_size == 0 or >= the server count: all servers, sorted.
std::vector<ServerAddress> deterministic_subset(std::vector<ServerAddress> servers,
                                                uint64_t subsetting_id, size_t subset_size);

// The subsetting id of thread group `group_index` (0..groups_per_client-1)
// in client process `client_id`: the groups of one client are consecutive
// ids, so together they spread over the servers as evenly as possible.
inline uint64_t subsetting_id(uint64_t client_id, int groups_per_client, int group_index) {
  return client_id * static_cast<uint64_t>(groups_per_client) + static_cast<uint64_t>(group_index);
}

}  // namespace percore
