#pragma once

// What percore-bench, grpc-echo-bench and raw-echo-bench share: the common
// flags, the measured window and the report (the table and the JSON that
// bench/compare reads).

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "bench/latency_histogram.h"

namespace percore::bench {

// The flags every load generator takes.
struct CommonOptions {
  std::string target;
  int concurrency = 0;
  double rate = 0;
  size_t payload = 16;
  double duration_s = 5;
  double warmup_s = 1;
  std::vector<pid_t> server_pids;
  int timeout_ms = 5000;
  std::string json_path;
};

// How a program extends the common flags.
struct FlagSpec {
  // Flags without a value (e.g. --inline); true if the program took it.
  std::function<bool(const std::string& flag)> on_switch;
  // The program's own flags with a value; true if taken. May throw
  // (std::stoi and the like) on a bad value.
  std::function<bool(const std::string& flag, const std::string& value)> on_flag;
  // The program's own integer flags, set in place (e.g. {"--threads", &n}).
  std::vector<std::pair<std::string, int*>> int_flags;
  // Common flags this program does not accept.
  std::vector<std::string> rejected;
};

// Parses argv into `options` and the program's own flags. Any problem (a
// missing or bad value, an unknown flag, no --target) goes to `usage`, which
// must not return. Checking which load was asked for is the program's.
void parse_flags(int argc, char** argv, CommonOptions& options, const FlagSpec& spec,
                 void (*usage)(const std::string& message));

// The measured window: its length and the CPU seconds spent in it.
struct Window {
  double elapsed_s = 0;
  double client_cpu_s = 0;
  double server_cpu_s = 0;
};

// Sleeps `warmup_s`, then measures `duration_s` with `measuring` set: wall
// time, this process's CPU and that of `server_pids`.
Window measure_window(double warmup_s, double duration_s, const std::vector<pid_t>& server_pids,
                      std::atomic<bool>& measuring);

struct BenchResult {
  std::string system;  // "percore", "grpc", "raw"
  std::string target;
  std::string method = "echo";
  size_t payload_bytes = 0;
  // The parallelism: its table column, its JSON key and its value.
  std::string parallelism_column = "groups";
  std::string parallelism_key = "groups";
  int parallelism = 0;
  int concurrency = 0;
  double rate = 0;
  double duration_s = 0;
  uint64_t completed = 0;
  const LatencyHistogram* latency = nullptr;
  double client_cpu_s = 0;
  double server_cpu_s = 0;
  std::map<int32_t, uint64_t> errors;  // by code
  std::function<std::string(int32_t)> error_name;

  uint64_t error_total() const;
};

// The header, the row and one "errors CODE NAME: n" line per code.
void print_table(const BenchResult& result);
// One line of JSON.
void write_json(const BenchResult& result, const std::string& path);

}  // namespace percore::bench
