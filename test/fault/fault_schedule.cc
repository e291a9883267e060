#include "test/fault/fault_schedule.h"

#include <signal.h>

#include <algorithm>
#include <chrono>
#include <optional>
#include <thread>

#include "test/fault/soak_cluster.h"
#include "test/fault/soak_load.h"
#include "test/support/slack.h"

namespace percore::testing {

const char* fault_kind_name(FaultKind kind) {
  switch (kind) {
    case FaultKind::kKillRestart:
      return "server killed (SIGKILL), restarted";
    case FaultKind::kFreeze:
      return "server frozen (SIGSTOP/SIGCONT)";
    case FaultKind::kGracefulRestart:
      return "graceful restart (SIGTERM, start again)";
    case FaultKind::kPartition:
      return "server host partitioned";
    case FaultKind::kZooKeeperLeaderKill:
      return "ZooKeeper leader killed, restarted";
    case FaultKind::kClientZooKeeperCut:
      return "client host cut off from ZooKeeper";
    case FaultKind::kServerSessionExpiry:
      return "server's ZooKeeper session expired";
    case FaultKind::kSlowHandler:
      return "slow handler (50 ms, 20 ms deadline)";
  }
  return "?";
}

bool targets_server(FaultKind kind) {
  return kind == FaultKind::kKillRestart || kind == FaultKind::kFreeze ||
         kind == FaultKind::kGracefulRestart || kind == FaultKind::kPartition ||
         kind == FaultKind::kServerSessionExpiry;
}

const char* fault_injection(FaultKind kind) {
  switch (kind) {
    case FaultKind::kKillRestart:
      return "kill -9 by pid; started again after the hold";
    case FaultKind::kFreeze:
      return "kill -STOP, kill -CONT after the hold";
    case FaultKind::kGracefulRestart:
      return "kill -TERM, waited for exit 0 (deregister, drain); started again";
    case FaultKind::kPartition:
      return "iptables DROP of every packet to or from the host, where it arrives";
    case FaultKind::kZooKeeperLeaderKill:
      return "kill -9 of the member whose srvr says leader; restarted after the hold";
    case FaultKind::kClientZooKeeperCut:
      return "iptables DROP between the client host and each ZooKeeper host";
    case FaultKind::kServerSessionExpiry:
      return "iptables DROP between the server host and each ZooKeeper host, past its 2 s "
             "session timeout";
    case FaultKind::kSlowHandler:
      return "5 calls/s of is_prime(2500000000000043) with a 20 ms deadline";
  }
  return "?";
}

std::vector<Episode> fault_cycle(int cycle, int servers, int quiet_ms) {
  const auto server = [&](int offset) { return (cycle + offset) % servers; };
  const auto fault = [](FaultKind kind, int target, int begin_ms, int hold_ms) {
    Fault made;
    made.kind = kind;
    made.server = target;
    made.begin_ms = begin_ms;
    made.hold_ms = hold_ms;
    return made;
  };
  const auto episode = [&](std::vector<Fault> faults) {
    Episode made;
    made.faults = std::move(faults);
    made.quiet_ms = quiet_ms;
    return made;
  };
  return {
      episode({fault(FaultKind::kKillRestart, server(0), 0, 1000)}),
      episode({fault(FaultKind::kFreeze, server(1), 0, 2500)}),
      episode({fault(FaultKind::kPartition, server(2), 0, 3000)}),
      episode({fault(FaultKind::kGracefulRestart, server(0), 0, 500)}),
      episode({fault(FaultKind::kZooKeeperLeaderKill, -1, 0, 2000)}),
      // Calls go on with the last list while a server dies and comes back.
      episode({fault(FaultKind::kClientZooKeeperCut, -1, 0, 3500),
               fault(FaultKind::kKillRestart, server(1), 1000, 1000)}),
      episode({fault(FaultKind::kServerSessionExpiry, server(2), 0, 3000),
               fault(FaultKind::kSlowHandler, -1, 0, 3000)}),
      // Two of the three servers impaired at once.
      episode({fault(FaultKind::kFreeze, server(0), 0, 2500),
               fault(FaultKind::kPartition, server(1), 0, 2500)}),
  };
}

namespace {

using std::chrono::milliseconds;

// Puts the fault in force; false with fault.error on failure.
bool begin_fault(Fault& fault, SoakCluster& cluster, SoakLoad& load) {
  // Before injecting: a partition's first rule bites while the others are
  // still being added.
  fault.began_us = load.now_us();
  std::string error;
  bool done = true;
  const size_t server = fault.server < 0 ? 0 : static_cast<size_t>(fault.server);
  if (targets_server(fault.kind) && !cluster.server_running(server)) {
    fault.target = cluster.server_host(server);
    fault.error = "injecting: its server is not running";
    return false;
  }
  switch (fault.kind) {
    case FaultKind::kKillRestart:
      fault.target = cluster.server_host(server);
      cluster.kill_server(server);
      break;
    case FaultKind::kFreeze:
      fault.target = cluster.server_host(server);
      cluster.signal_server(server, SIGSTOP);
      break;
    case FaultKind::kGracefulRestart:
      fault.target = cluster.server_host(server);
      done = cluster.stop_server(server, scaled(milliseconds(15000)), &error);
      break;
    case FaultKind::kPartition:
      fault.target = cluster.server_host(server);
      done = cluster.network().partition(fault.target, &error);
      break;
    case FaultKind::kZooKeeperLeaderKill: {
      const std::optional<size_t> leader = cluster.zookeeper().leader();
      if (!leader) {
        error = "no ZooKeeper member says it is the leader";
        done = false;
        break;
      }
      fault.server = static_cast<int>(*leader);  // The member, for the end.
      fault.target = cluster.zookeeper_hosts()[*leader] + " (leader)";
      cluster.zookeeper().member(*leader).kill_hard();
      break;
    }
    case FaultKind::kClientZooKeeperCut:
      fault.target = "client";
      for (const std::string& member : cluster.zookeeper_hosts())
        done = done && cluster.network().cut("client", member, &error);
      break;
    case FaultKind::kServerSessionExpiry:
      fault.target = cluster.server_host(server);
      for (const std::string& member : cluster.zookeeper_hosts())
        done = done && cluster.network().cut(fault.target, member, &error);
      break;
    case FaultKind::kSlowHandler:
      fault.target = "every server";
      load.set_slow_handlers(true);
      break;
  }
  if (!done)
    fault.error = "injecting: " + error;
  return done;
}

// Ends the fault; ended_us once it is over (e.g. the server ready again).
void end_fault(Fault& fault, SoakCluster& cluster, SoakLoad& load) {
  std::string error;
  bool done = true;
  const size_t server = fault.server < 0 ? 0 : static_cast<size_t>(fault.server);
  switch (fault.kind) {
    case FaultKind::kKillRestart:
    case FaultKind::kGracefulRestart:
      done = cluster.start_server(server, &error);
      break;
    case FaultKind::kFreeze:
      cluster.signal_server(server, SIGCONT);
      break;
    case FaultKind::kPartition:
    case FaultKind::kServerSessionExpiry:
      done = cluster.network().heal(fault.target, &error);
      break;
    case FaultKind::kZooKeeperLeaderKill:
      done = cluster.zookeeper().member(server).restart(&error);
      break;
    case FaultKind::kClientZooKeeperCut:
      done = cluster.network().heal("client", &error);
      break;
    case FaultKind::kSlowHandler:
      load.set_slow_handlers(false);
      break;
  }
  fault.ended_us = load.now_us();
  if (!done)
    fault.error += (fault.error.empty() ? "" : "; ") + std::string("ending: ") + error;
}

}  // namespace

void run_episode(Episode& episode, SoakCluster& cluster, SoakLoad& load,
                 const std::atomic<bool>& interrupted) {
  // Sleeps until `until_us` (load time), waking for an interruption.
  const auto sleep_until = [&](int64_t until_us) {
    while (!interrupted.load() && load.now_us() < until_us) {
      std::this_thread::sleep_for(std::chrono::microseconds(
          std::min<int64_t>(50'000, std::max<int64_t>(0, until_us - load.now_us()))));
    }
  };
  struct Step {
    int at_ms;
    bool begin;
    size_t fault;
  };
  std::vector<Step> steps;
  for (size_t index = 0; index < episode.faults.size(); ++index) {
    const Fault& fault = episode.faults[index];
    steps.push_back({fault.begin_ms, true, index});
    steps.push_back({fault.begin_ms + fault.hold_ms, false, index});
  }
  std::stable_sort(steps.begin(), steps.end(),
                   [](const Step& a, const Step& b) { return a.at_ms < b.at_ms; });
  episode.began_us = load.now_us();
  std::vector<bool> in_force(episode.faults.size(), false);
  for (const Step& step : steps) {
    // Interrupted: the faults in force end now, those not begun never do.
    if (!interrupted.load())
      sleep_until(episode.began_us + int64_t{step.at_ms} * 1000);
    if (interrupted.load() && step.begin)
      continue;
    Fault& fault = episode.faults[step.fault];
    if (step.begin) {
      in_force[step.fault] = begin_fault(fault, cluster, load);
    } else if (in_force[step.fault]) {
      end_fault(fault, cluster, load);
    } else {
      fault.ended_us = load.now_us();
    }
  }
  episode.faults_ended_us = load.now_us();
  sleep_until(episode.faults_ended_us + int64_t{episode.quiet_ms} * 1000);
  episode.ended_us = load.now_us();
}

}  // namespace percore::testing
