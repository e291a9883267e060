#include <percore/discovery/subsetting.h>

#include <algorithm>
#include <utility>

namespace percore {

uint64_t SplitMix64::next() {
  state_ += 0x9e3779b97f4a7c15ULL;
  uint64_t z = state_;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

uint64_t SplitMix64::below(uint64_t bound) {
  // 2^64 mod bound values at the bottom would be drawn once more than the
  // others; drawing again when one comes up leaves an exact multiple.
  const uint64_t threshold = (0 - bound) % bound;
  for (;;) {
    const uint64_t value = next();
    if (value >= threshold)
      return value % bound;
  }
}

void deterministic_shuffle(std::vector<ServerAddress>& servers, uint64_t seed) {
  SplitMix64 random(seed);
  for (size_t i = servers.size(); i > 1; --i) {
    const size_t j = static_cast<size_t>(random.below(i));
    if (j != i - 1)
      std::swap(servers[i - 1], servers[j]);
  }
}

std::vector<ServerAddress> deterministic_subset(std::vector<ServerAddress> servers,
                                                uint64_t subsetting_id, size_t subset_size) {
  std::sort(servers.begin(), servers.end());
  servers.erase(std::unique(servers.begin(), servers.end()), servers.end());
  if (subset_size == 0 || subset_size >= servers.size())
    return servers;

  const uint64_t subset_count = servers.size() / subset_size;  // >= 1 here
  const uint64_t round = subsetting_id / subset_count;
  deterministic_shuffle(servers, round);
  const size_t first = static_cast<size_t>(subsetting_id % subset_count) * subset_size;
  return std::vector<ServerAddress>(
      servers.begin() + static_cast<std::ptrdiff_t>(first),
      servers.begin() + static_cast<std::ptrdiff_t>(first + subset_size));
}

}  // namespace percore
