// The fault soak: an open-loop load from a client host to three server hosts
// found through a ZooKeeper ensemble on three more hosts (network
// namespaces on this machine), while faults come one at a time and
// overlapping. Every call id goes into a ledger; the run fails if a call is
// lost or ends twice, ends past its deadline + 100 ms, if success is not back
// to 100 % within 5 s of a fault's end, if a partitioned server keeps being
// sent calls past dead-connection detection, or if a process's memory grows
// past its bound. docs/RELIABILITY.md, "Faults across hosts".
//
//   soak [--duration SECONDS] [--rate CALLS_PER_SECOND] [--quiet-ms N]
//        [--json FILE] [--logs DIR] [--s3-send-buffer BYTES]
//        [--s3-receive-buffer BYTES]
//
// Server s3 runs with small socket buffers (percore-server's
// --socket-send-buffer / --socket-receive-buffer; default 1, the kernel's
// minimum, and 16384).
//
// Needs root (network namespaces). Exit status: 0 passed, 1 failed, 77
// skipped (not root, or no ip/iptables) unless PERCORE_REQUIRE_NETNS=1, then
// a skip is a failure.

#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include <percore/base/log.h>
#include <percore/client_proxy/channel.h>
#include "test/fault/fault_schedule.h"
#include "test/fault/soak_cluster.h"
#include "test/fault/soak_load.h"
#include "test/fault/soak_report.h"
#include "test/support/child_process.h"
#include "test/support/slack.h"

namespace {

using namespace percore::testing;
using std::chrono::milliseconds;

constexpr int kSkipped = 77;

struct Arguments {
  int duration_s = 60;
  double rate = 2000;
  int quiet_ms = 4000;
  std::string json_path = "soak-summary.json";
  std::string log_directory;
  // s3's buffers: the kernel's minimum send buffer (every answer larger than
  // about 4 KiB written in pieces) and a small receive buffer. Not the
  // minimum receive buffer: with it the kernel's zero-window probing (the
  // persist timer, backing off) held calls to s3 for over a second at a
  // time (docs/RELIABILITY.md).
  int small_send_buffer = 1;
  int small_receive_buffer = 16384;
};

[[noreturn]] void usage(const std::string& message) {
  std::fprintf(stderr,
               "soak: %s\nusage: soak [--duration SECONDS] [--rate CALLS_PER_SECOND] "
               "[--quiet-ms N] [--json FILE] [--logs DIR]\n"
               "            [--s3-send-buffer BYTES] [--s3-receive-buffer BYTES]\n",
               message.c_str());
  std::exit(2);
}

Arguments parse(int argc, char** argv) {
  Arguments arguments;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (i + 1 >= argc)
      usage(std::string("missing value for ") + flag);
    const std::string value = argv[++i];
    char* end = nullptr;
    const double number = std::strtod(value.c_str(), &end);
    const bool numeric = end != value.c_str() && *end == '\0' && number > 0;
    if (flag == "--duration" && numeric) {
      arguments.duration_s = static_cast<int>(number);
    } else if (flag == "--rate" && numeric && number <= 100000) {
      arguments.rate = number;
    } else if (flag == "--quiet-ms" && numeric) {
      arguments.quiet_ms = static_cast<int>(number);
    } else if (flag == "--json") {
      arguments.json_path = value;
    } else if (flag == "--s3-send-buffer" && (numeric || value == "0")) {
      arguments.small_send_buffer = static_cast<int>(number);
    } else if (flag == "--s3-receive-buffer" && (numeric || value == "0")) {
      arguments.small_receive_buffer = static_cast<int>(number);
    } else if (flag == "--logs") {
      arguments.log_directory = value;
    } else {
      usage(std::string("bad option ") + flag + " " + value);
    }
  }
  return arguments;
}

int skip(const std::string& reason) {
  const char* required = std::getenv("PERCORE_REQUIRE_NETNS");
  if (required != nullptr && std::string(required) == "1") {
    std::fprintf(stderr, "soak: FAILED: test hosts are required here but %s\n", reason.c_str());
    return 1;
  }
  std::printf("soak: SKIPPED: %s\n", reason.c_str());
  return kSkipped;
}

}  // namespace

int main(int argc, char** argv) {
  const Arguments arguments = parse(argc, argv);
  std::signal(SIGPIPE, SIG_IGN);
  const std::string unavailable = TestNetwork::unavailable_reason();
  if (!unavailable.empty())
    return skip(unavailable);

  // Server logs: kept when the run fails, removed when it passes (unless
  // --logs names a folder, which is kept).
  std::string logs = arguments.log_directory;
  const bool own_logs = logs.empty();
  if (own_logs) {
    char pattern[] = "/tmp/percore-soak-XXXXXX";
    if (::mkdtemp(pattern) == nullptr) {
      std::perror("soak: mkdtemp");
      return 1;
    }
    logs = pattern;
  } else {
    std::filesystem::create_directories(logs);
  }

  SoakCluster::Options cluster_options;
  cluster_options.log_directory = logs;
  cluster_options.last_send_buffer = arguments.small_send_buffer;
  cluster_options.last_receive_buffer = arguments.small_receive_buffer;
  std::string error;
  std::printf(
      "soak: building 7 test hosts (client, s1-s3, zk1-zk3) and starting ZooKeeper and "
      "the servers\n");
  std::fflush(stdout);
  std::unique_ptr<SoakCluster> cluster = SoakCluster::create(cluster_options, &error);
  if (cluster == nullptr) {
    if (error.find("namespace") != std::string::npos &&
        error.find("Operation not permitted") != std::string::npos)
      return skip(error);
    std::fprintf(stderr, "soak: FAILED to set up: %s\n(server logs in %s)\n", error.c_str(),
                 logs.c_str());
    return 1;
  }

  percore::ChannelOptions channel_options;
  channel_options.timeout_ms = 1000;
  channel_options.connect_timeout_ms = 300;
  channel_options.keepalive_time_ms = 500;
  channel_options.keepalive_timeout_ms = 500;
  channel_options.naming_timeout_ms = 10000;
  channel_options.zookeeper_session_timeout_ms = 3000;
  auto echo_channel = std::make_unique<percore::Channel>();
  auto prime_channel = std::make_unique<percore::Channel>();
  const std::string registry = cluster->registry();
  if (!echo_channel->Init(registry + "/example.EchoService", channel_options, &error) ||
      !prime_channel->Init(registry + "/prime.PrimeService", channel_options, &error)) {
    std::fprintf(stderr, "soak: FAILED: Channel::Init: %s\n", error.c_str());
    return 1;
  }
  SoakLoad::Options load_options;
  load_options.calls_per_second = arguments.rate;
  // Room for the last cycle's episodes to run to their end.
  load_options.max_duration = milliseconds(int64_t{arguments.duration_s} * 1000 + 120000);
  for (size_t index = 0; index < cluster->server_count(); ++index)
    load_options.servers.push_back(cluster->server_address(index));
  SoakLoad load(*echo_channel, *prime_channel, load_options);

  SoakBounds bounds;
  // Dead-connection detection: keepalive time + timeout, plus one keepalive
  // period for the client's sweep and the calls already on their way.
  bounds.dead_detection_us =
      int64_t{channel_options.keepalive_time_ms + channel_options.keepalive_timeout_ms +
              channel_options.keepalive_time_ms} *
      1000;

  SoakCluster& hosts = *cluster;
  RssMonitor rss(load, [&hosts] {
    std::vector<std::pair<std::string, pid_t>> pids = {{"client", ::getpid()}};
    for (size_t index = 0; index < hosts.server_count(); ++index)
      pids.emplace_back(hosts.server_host(index), hosts.server_pid(index));
    return pids;
  });

  std::printf("soak: %d s at %.0f calls/s to %s\n", arguments.duration_s, arguments.rate,
              registry.c_str());
  std::fflush(stdout);
  load.start();
  rss.start();
  // A calm start, then episodes back to back; every episode of the last
  // cycle runs to its end, so the load may run a little past --duration.
  std::this_thread::sleep_for(milliseconds(2000));
  std::vector<Episode> episodes;
  for (int cycle = 0; load.now_us() < int64_t{arguments.duration_s} * 1'000'000 - 5'000'000;
       ++cycle) {
    for (Episode& episode :
         fault_cycle(cycle, static_cast<int>(cluster->server_count()), arguments.quiet_ms)) {
      if (cycle > 0 && load.now_us() >= int64_t{arguments.duration_s} * 1'000'000 - 5'000'000)
        break;
      run_episode(episode, *cluster, load);
      episodes.push_back(std::move(episode));
      const Episode& done = episodes.back();
      std::printf("soak: t=%.1f s episode %zu done (%s%s)\n", done.ended_us / 1e6, episodes.size(),
                  fault_kind_name(done.faults[0].kind), done.faults.size() > 1 ? " + ..." : "");
      std::fflush(stdout);
    }
  }
  const bool drained = load.finish(scaled(milliseconds(10000)));
  rss.stop();
  if (!drained)
    std::fprintf(stderr, "soak: %zu calls had not ended 10 s after the last was issued\n",
                 load.issued() - load.ended());

  nlohmann::json summary;
  summary["duration_s"] = load.now_us() / 1e6;
  summary["rate_calls_per_second"] = arguments.rate;
  summary["bounds"] = {{"deadline_overshoot_ms", bounds.deadline_overshoot_us / 1000},
                       {"recovery_ms", bounds.recovery_us / 1000},
                       {"dead_detection_ms", bounds.dead_detection_us / 1000},
                       {"client_rss_growth_kib", bounds.client_rss_growth_kib},
                       {"server_rss_growth_kib", bounds.server_rss_growth_kib}};
  summary["channel"] = {
      {"timeout_ms", channel_options.timeout_ms},
      {"max_retry", load_options.max_retry},
      {"keepalive_time_ms", channel_options.keepalive_time_ms},
      {"keepalive_timeout_ms", channel_options.keepalive_timeout_ms},
      {"connect_timeout_ms", channel_options.connect_timeout_ms},
      {"zookeeper_session_timeout_ms", channel_options.zookeeper_session_timeout_ms}};
  std::vector<std::string> servers;
  for (size_t index = 0; index < cluster->server_count(); ++index) {
    servers.push_back(cluster->server_host(index) +
                      (cluster->server_has_small_buffers(index) ? " (small socket buffers)" : ""));
  }
  std::vector<std::string> failures =
      analyse_soak(load, episodes, rss.samples(), servers, bounds, &summary);
  if (!drained)
    failures.push_back("calls still running 10 s after the load ended");
  summary["passed"] = failures.empty();
  for (const auto& [name, channel] :
       {std::pair{"echo", echo_channel.get()}, std::pair{"prime", prime_channel.get()}}) {
    const percore::ChannelGroupStats stats = channel->stats().total;
    summary["client_channels"][name] = {
        {"retries", stats.retries},
        {"retries_refused_by_budget", stats.retries_refused_by_budget},
        {"retries_refused_by_limit", stats.retries_refused_by_limit},
        {"connect_failures", stats.connect_failures},
        {"connections_broken", stats.connections_broken},
        {"connections_dead", stats.connections_dead},
        {"ejections", stats.ejections},
        {"readmissions", stats.readmissions},
        {"stale_replies", stats.stale_replies}};
  }
  std::ofstream(arguments.json_path) << summary.dump(2) << "\n";
  std::printf("%s", format_soak_summary(summary).c_str());
  std::printf("soak: summary in %s\n", arguments.json_path.c_str());

  // Stop the load's Channels before the servers and ZooKeeper go.
  echo_channel.reset();
  prime_channel.reset();
  cluster.reset();
  if (failures.empty() && own_logs) {
    std::error_code ignored;
    std::filesystem::remove_all(logs, ignored);
  } else {
    std::printf("soak: server logs in %s\n", logs.c_str());
  }
  std::printf("soak: %s\n", failures.empty() ? "PASSED" : "FAILED");
  return failures.empty() ? 0 : 1;
}
