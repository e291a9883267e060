#pragma once

#include <dirent.h>
#include <sys/types.h>

#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>
#include <string>

namespace percore::testing {

// The pids of the live children of `parent` (from /proc/PID/stat's ppid).
inline std::set<pid_t> children_of(pid_t parent) {
  std::set<pid_t> children;
  DIR* proc = ::opendir("/proc");
  if (proc == nullptr)
    return children;
  while (dirent* entry = ::readdir(proc)) {
    const pid_t pid = static_cast<pid_t>(std::atoi(entry->d_name));
    if (pid <= 0)
      continue;
    std::ifstream stat(std::string("/proc/") + entry->d_name + "/stat");
    std::string line;
    if (!std::getline(stat, line))
      continue;
    // pid (comm) state ppid ...: comm may hold spaces, so read after ')'.
    const size_t close = line.rfind(')');
    if (close == std::string::npos)
      continue;
    std::istringstream rest(line.substr(close + 1));
    char state = 0;
    pid_t ppid = 0;
    rest >> state >> ppid;
    if (ppid == parent)
      children.insert(pid);
  }
  ::closedir(proc);
  return children;
}

}  // namespace percore::testing
