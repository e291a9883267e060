#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

namespace percore::testing {

class SoakCluster;
class SoakLoad;

// The faults the soak injects (docs/RELIABILITY.md, "Faults across hosts").
enum class FaultKind {
  kKillRestart,          // SIGKILL a server; start it again after `hold`.
  kFreeze,               // SIGSTOP a server; SIGCONT after `hold`.
  kGracefulRestart,      // SIGTERM a server, wait for its exit; start it again
                         // after `hold` (a rolling deploy).
  kPartition,            // Packets to and from a server host vanish for `hold`.
  kZooKeeperLeaderKill,  // SIGKILL the ensemble's leader; restart it after
                         // `hold`.
  kClientZooKeeperCut,   // The client host cannot reach any ZooKeeper
                         // member for `hold`; servers stay reachable.
  kServerSessionExpiry,  // A server host cannot reach ZooKeeper for
                         // `hold` (longer than its session timeout): its
                         // session expires, its nodes go; it registers again.
  kSlowHandler,          // Calls whose handler runs ~50 ms against a 20 ms
                         // deadline are mixed in for `hold`.
};
const char* fault_kind_name(FaultKind kind);
// True for the faults whose `server` is a server index (not a ZooKeeper
// member, not every server).
bool targets_server(FaultKind kind);
// How the fault is injected, in a few words, for the report.
const char* fault_injection(FaultKind kind);

// One fault of an episode. Times are milliseconds from the episode's start.
struct Fault {
  FaultKind kind;
  int server = -1;  // Target server index, for faults on a server.
  int begin_ms = 0;
  int hold_ms = 0;
  // What happened, filled in by run_episode: microseconds since the load
  // began (SoakLoad::now_us) when the fault was in force and when it was
  // over (the server restarted and ready, the member rejoined...).
  int64_t began_us = -1;
  int64_t ended_us = -1;
  std::string target;  // "s2", "zk1 (leader)", "client"...
  std::string error;   // Why injecting or ending it failed; empty if fine.
};

// Faults that overlap, then a quiet spell in which success must come back.
struct Episode {
  std::vector<Fault> faults;
  int quiet_ms = 4000;
  int64_t began_us = -1;
  int64_t faults_ended_us = -1;  // The last fault's end.
  int64_t ended_us = -1;         // After the quiet spell.
};

// One cycle of every fault, alone and overlapping, with server targets
// rotated by `cycle` (so long runs hit every server with every fault).
std::vector<Episode> fault_cycle(int cycle, int servers, int quiet_ms);

// Runs the episode's faults at their times, on the calling thread (the
// cluster's control thread), then waits out the quiet spell. Once
// `interrupted` is set, ends the faults in force at once and returns.
void run_episode(Episode& episode, SoakCluster& cluster, SoakLoad& load,
                 const std::atomic<bool>& interrupted);

}  // namespace percore::testing
