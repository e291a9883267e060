#include <percore/base/detail/metrics_registry.h>

#include <prometheus/text_serializer.h>

#include <utility>

namespace percore::detail {

MetricsRegistry& MetricsRegistry::process() {
  static MetricsRegistry* registry = new MetricsRegistry;  // Never destroyed: static Channels.
  return *registry;
}

uint64_t MetricsRegistry::add(Source source) {
  std::lock_guard lock(mutex_);
  const uint64_t handle = next_handle_++;
  sources_.emplace(handle, std::move(source));
  return handle;
}

void MetricsRegistry::remove(uint64_t handle) {
  std::lock_guard lock(mutex_);
  sources_.erase(handle);
}

void MetricsRegistry::collect(std::vector<prometheus::MetricFamily>& families) const {
  std::lock_guard lock(mutex_);
  for (const auto& [handle, source] : sources_)
    source(families);
}

std::string metrics_text(std::vector<prometheus::MetricFamily> families) {
  std::vector<prometheus::MetricFamily> merged;
  std::map<std::string, size_t> by_name;
  for (prometheus::MetricFamily& family : families) {
    const auto [found, added] = by_name.emplace(family.name, merged.size());
    if (added) {
      merged.push_back(std::move(family));
    } else {
      std::vector<prometheus::ClientMetric>& metrics = merged[found->second].metric;
      for (prometheus::ClientMetric& metric : family.metric)
        metrics.push_back(std::move(metric));
    }
  }
  return prometheus::TextSerializer().Serialize(merged);
}

prometheus::ClientMetric labelled(std::vector<std::pair<std::string, std::string>> labels) {
  prometheus::ClientMetric metric;
  for (auto& [name, value] : labels)
    metric.label.push_back(prometheus::ClientMetric::Label{std::move(name), std::move(value)});
  return metric;
}

prometheus::MetricFamily family(std::string name, std::string help, prometheus::MetricType type) {
  prometheus::MetricFamily result;
  result.name = std::move(name);
  result.help = std::move(help);
  result.type = type;
  return result;
}

}  // namespace percore::detail
