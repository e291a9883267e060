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

// An integer in [low, high], or the usage error.
long long integer_in(const std::string& flag, const std::string& value, long long low,
                     long long high) {
  char* end = nullptr;
  errno = 0;
  const long long number = std::strtoll(value.c_str(), &end, 10);
  if (value.empty() || *end != '\0' || errno != 0 || number < low || number > high) {
    usage(flag + " needs a whole number from " + std::to_string(low) + " to " +
          std::to_string(high) + ", not \"" + value + "\"");
  }
  return number;
}

// The ledger holds a record per call, allocated up front (32 bytes and a
// counter each).
constexpr double kMostCalls = 50'000'000;

Arguments parse(int argc, char** argv) {
  Arguments arguments;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (i + 1 >= argc)
      usage(std::string("missing value for ") + flag);
    const std::string value = argv[++i];
    if (flag == "--duration") {
      arguments.duration_s = static_cast<int>(integer_in(flag, value, 1, 86400));
    } else if (flag == "--rate") {
      arguments.rate = static_cast<double>(integer_in(flag, value, 100, 100000));
    } else if (flag == "--quiet-ms") {
      // Long enough to see success come back (the bound is 5 s; recovery
      // is judged within the quiet spell).
      arguments.quiet_ms = static_cast<int>(integer_in(flag, value, 2000, 60000));
    } else if (flag == "--json") {
      arguments.json_path = value;
    } else if (flag == "--s3-send-buffer") {
      arguments.small_send_buffer = static_cast<int>(integer_in(flag, value, 0, 1 << 30));
    } else if (flag == "--s3-receive-buffer") {
      arguments.small_receive_buffer = static_cast<int>(integer_in(flag, value, 0, 1 << 30));
    } else if (flag == "--logs") {
      arguments.log_directory = value;
    } else {
      usage(std::string("unknown option ") + flag);
    }
  }
  // The first cycle of faults runs whole even past --duration (about 60 s).
  if (arguments.rate * (std::max(arguments.duration_s, 60) + 120) > kMostCalls) {
    usage("--rate x --duration is too many calls for the ledger (at most " +
          std::to_string(static_cast<long long>(kMostCalls)) + ")");
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

std::atomic<bool> interrupted{false};

void on_stop_signal(int) {
  interrupted.store(true);
}

}  // namespace

int main(int argc, char** argv) {
  const Arguments arguments = parse(argc, argv);
  std::signal(SIGPIPE, SIG_IGN);
  // Ctrl-C or a SIGTERM ends the run early but cleanly: faults end, the
  // calls drain, everything is stopped and the namespaces deleted.
  struct sigaction stop {};
  stop.sa_handler = on_stop_signal;
  sigemptyset(&stop.sa_mask);
  ::sigaction(SIGINT, &stop, nullptr);
  ::sigaction(SIGTERM, &stop, nullptr);
  // By hand, percore-server is found beside this program's build tree
  // (test/fault/soak -> examples/percore-server).
  if (std::getenv("PERCORE_BINARY_DIR") == nullptr) {
    std::error_code ignored;
    const std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe", ignored);
    if (!self.empty())
      ::setenv("PERCORE_BINARY_DIR", self.parent_path().parent_path().parent_path().c_str(), 1);
  }
  if (!std::ofstream(arguments.json_path, std::ios::app))
    usage("cannot write the summary to " + arguments.json_path);
  if (!std::filesystem::exists(built_program("examples/percore-server"))) {
    std::fprintf(stderr, "soak: no percore-server at %s (set PERCORE_BINARY_DIR to the build)\n",
                 built_program("examples/percore-server").c_str());
    return 1;
  }
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
    std::fprintf(stderr, "soak: FAILED to set up: %s\n", error.c_str());
    std::error_code ignored;
    if (own_logs && std::filesystem::is_empty(logs, ignored))
      std::filesystem::remove(logs, ignored);
    else
      std::fprintf(stderr, "soak: server logs in %s\n", logs.c_str());
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
  // A calm start, then episodes back to back. The first cycle (every fault
  // once, about 60 s) always runs whole; later ones while --duration lasts,
  // each episode to its end, so the load may run a little past --duration.
  std::vector<std::string> crashes;
  const int64_t calm_until_us = 2'000'000;
  while (!interrupted.load() && load.now_us() < calm_until_us)
    std::this_thread::sleep_for(milliseconds(50));
  std::vector<Episode> episodes;
  const int64_t last_start_us = int64_t{arguments.duration_s} * 1'000'000 - 5'000'000;
  for (int cycle = 0; !interrupted.load() && (cycle == 0 || load.now_us() < last_start_us);
       ++cycle) {
    for (Episode& episode :
         fault_cycle(cycle, static_cast<int>(cluster->server_count()), arguments.quiet_ms)) {
      if (interrupted.load() || (cycle > 0 && load.now_us() >= last_start_us))
        break;
      run_episode(episode, *cluster, load, interrupted);
      episodes.push_back(std::move(episode));
      const Episode& done = episodes.back();
      // Every server runs again now; one that does not crashed.
      for (const std::string& crash : cluster->restart_crashed_servers())
        crashes.push_back("episode " + std::to_string(episodes.size()) + ": " + crash);
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
  for (const std::string& crash : cluster->restart_crashed_servers())
    crashes.push_back("at the end: " + crash);
  std::vector<std::string> failures =
      analyse_soak(load, episodes, rss.samples(), servers, bounds, &summary);
  if (!drained)
    failures.push_back("calls still running 10 s after the load ended");
  for (const std::string& crash : crashes)
    failures.push_back("a server exited although no fault stopped it: " + crash);
  if (interrupted.load())
    failures.push_back("interrupted (SIGINT or SIGTERM) before the end");
  summary["failures"] = failures;
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
  std::printf("%s", format_soak_summary(summary).c_str());
  {
    std::ofstream json(arguments.json_path, std::ios::trunc);
    json << summary.dump(2) << "\n";
    json.close();
    if (!json) {
      std::fprintf(stderr, "soak: cannot write the summary to %s\n", arguments.json_path.c_str());
      failures.push_back("the summary could not be written to " + arguments.json_path);
    } else {
      std::printf("soak: summary in %s\n", arguments.json_path.c_str());
    }
  }

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
