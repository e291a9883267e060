#include "bench/cpu_usage.h"

#include <sys/resource.h>
#include <unistd.h>

#include <fstream>
#include <iterator>
#include <sstream>
#include <string>

namespace percore::bench {

double self_cpu_seconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  auto seconds = [](const timeval& value) {
    return static_cast<double>(value.tv_sec) + static_cast<double>(value.tv_usec) / 1e6;
  };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

double process_cpu_seconds(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  const std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  // The command name is in parentheses and may hold spaces: fields count from
  // after its closing parenthesis (field 3 is the state).
  const size_t close = text.rfind(')');
  if (close == std::string::npos)
    return 0;
  std::istringstream fields(text.substr(close + 2));
  std::string field;
  unsigned long long user_ticks = 0;
  unsigned long long system_ticks = 0;
  for (int index = 3; fields >> field; ++index) {
    if (index == 14)
      user_ticks = std::stoull(field);
    if (index == 15) {
      system_ticks = std::stoull(field);
      break;
    }
  }
  return static_cast<double>(user_ticks + system_ticks) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

double processes_cpu_seconds(const std::vector<pid_t>& pids) {
  double total = 0;
  for (pid_t pid : pids)
    total += process_cpu_seconds(pid);
  return total;
}

}  // namespace percore::bench
