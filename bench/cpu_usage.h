#pragma once

#include <sys/types.h>

#include <vector>

namespace percore::bench {

// User + system CPU seconds of this process (getrusage).
double self_cpu_seconds();
// User + system CPU seconds of another process, from /proc/PID/stat; 0 if it
// is gone.
double process_cpu_seconds(pid_t pid);
// Summed over several processes.
double processes_cpu_seconds(const std::vector<pid_t>& pids);

}  // namespace percore::bench
