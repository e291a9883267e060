#include <percore/client_proxy/channel_stats.h>

#include <percore/client_proxy/detail/route_counters.h>

namespace percore {
namespace detail {

ChannelGroupStats RouteCounters::snapshot() const {
  const auto get = [](const Counter& counter) { return counter.load(std::memory_order_relaxed); };
  const auto now = [](const Gauge& gauge) { return gauge.load(std::memory_order_relaxed); };
  ChannelGroupStats stats;
  stats.calls_started = get(calls_started);
  stats.ends_by_code = ends.snapshot();
  for (const auto& [code, count] : stats.ends_by_code)
    stats.calls_ended += count;
  stats.retries = get(retries);
  stats.retries_refused_by_budget = get(retries_refused_by_budget);
  stats.retries_refused_by_limit = get(retries_refused_by_limit);
  stats.stale_replies = get(stale_replies);
  stats.malformed_responses = get(malformed_responses);
  stats.connects = get(connects);
  stats.connect_failures = get(connect_failures);
  stats.clean_closes = get(clean_closes);
  stats.connections_broken = get(connections_broken);
  stats.connections_dead = get(connections_dead);
  stats.probes_sent = get(probes_sent);
  stats.ejections = get(ejections);
  stats.readmissions = get(readmissions);
  stats.servers = now(servers);
  stats.servers_ejected = now(servers_ejected);
  stats.connections_ready = now(connections_ready);
  stats.connections_connecting = now(connections_connecting);
  stats.connections_ejected = now(connections_ejected);
  stats.connections_closing = now(connections_closing);
  return stats;
}

}  // namespace detail

namespace {

void add_into(ChannelGroupStats& sum, const ChannelGroupStats& part) {
  sum.calls_started += part.calls_started;
  sum.calls_ended += part.calls_ended;
  for (const auto& [code, count] : part.ends_by_code)
    sum.ends_by_code[code] += count;
  sum.retries += part.retries;
  sum.retries_refused_by_budget += part.retries_refused_by_budget;
  sum.retries_refused_by_limit += part.retries_refused_by_limit;
  sum.stale_replies += part.stale_replies;
  sum.malformed_responses += part.malformed_responses;
  sum.connects += part.connects;
  sum.connect_failures += part.connect_failures;
  sum.clean_closes += part.clean_closes;
  sum.connections_broken += part.connections_broken;
  sum.connections_dead += part.connections_dead;
  sum.probes_sent += part.probes_sent;
  sum.ejections += part.ejections;
  sum.readmissions += part.readmissions;
  sum.servers += part.servers;
  sum.servers_ejected += part.servers_ejected;
  sum.connections_ready += part.connections_ready;
  sum.connections_connecting += part.connections_connecting;
  sum.connections_ejected += part.connections_ejected;
  sum.connections_closing += part.connections_closing;
}

}  // namespace

namespace detail {

ChannelStats sum_group_stats(std::vector<ChannelGroupStats> groups) {
  ChannelStats stats;
  stats.groups = std::move(groups);
  for (const ChannelGroupStats& group : stats.groups)
    add_into(stats.total, group);
  return stats;
}

}  // namespace detail

std::string ChannelStats::to_string() const {
  const ChannelGroupStats& t = total;
  std::string text;
  const auto line = [&text](const char* name, auto value) {
    text += name;
    text += ' ';
    text += std::to_string(value);
    text += '\n';
  };
  line("groups", groups.size());
  line("calls_started", t.calls_started);
  line("calls_ended", t.calls_ended);
  for (const auto& [code, count] : t.ends_by_code)
    text += "ends_by_code " + std::to_string(code) + ' ' + std::to_string(count) + '\n';
  line("retries", t.retries);
  line("retries_refused_by_budget", t.retries_refused_by_budget);
  line("retries_refused_by_limit", t.retries_refused_by_limit);
  line("stale_replies", t.stale_replies);
  line("malformed_responses", t.malformed_responses);
  line("connects", t.connects);
  line("connect_failures", t.connect_failures);
  line("clean_closes", t.clean_closes);
  line("connections_broken", t.connections_broken);
  line("connections_dead", t.connections_dead);
  line("probes_sent", t.probes_sent);
  line("ejections", t.ejections);
  line("readmissions", t.readmissions);
  line("servers", t.servers);
  line("servers_ejected", t.servers_ejected);
  line("connections_ready", t.connections_ready);
  line("connections_connecting", t.connections_connecting);
  line("connections_ejected", t.connections_ejected);
  line("connections_closing", t.connections_closing);
  return text;
}

}  // namespace percore
