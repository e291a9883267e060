#pragma once

#include <prometheus/metric_family.h>

#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace percore::detail {

// The process's sources of Prometheus metrics beyond a server's own: each
// Channel adds one at Init and removes it when destroyed, so that a server's
// `/metrics` (a gateway's, a pipeline stage's) shows the calls it makes as
// well as those it answers. Sources collect on the scraping thread from
// their own relaxed counters: nothing is recorded through prometheus-cpp on
// the call path.
//
// Owns: the sources. Threads: any (a mutex; a source must not add or remove
// sources while it collects).
class MetricsRegistry {
 public:
  using Source = std::function<void(std::vector<prometheus::MetricFamily>& families)>;

  static MetricsRegistry& process();

  // Returns a handle for remove().
  uint64_t add(Source source);
  void remove(uint64_t handle);
  void collect(std::vector<prometheus::MetricFamily>& families) const;

 private:
  mutable std::mutex mutex_;
  uint64_t next_handle_ = 1;
  std::map<uint64_t, Source> sources_;
};

// Prometheus text exposition (format 0.0.4) of `families`; families of the
// same name (one per Channel, say) are merged into one, as the format wants.
std::string metrics_text(std::vector<prometheus::MetricFamily> families);

// Helpers to build families: a sample with labels.
prometheus::ClientMetric labelled(std::vector<std::pair<std::string, std::string>> labels);
prometheus::MetricFamily family(std::string name, std::string help, prometheus::MetricType type);

}  // namespace percore::detail
