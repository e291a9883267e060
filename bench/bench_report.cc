#include "bench/bench_report.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <thread>

#include "bench/cpu_usage.h"

namespace percore::bench {
namespace {

using Clock = std::chrono::steady_clock;

std::string json_escape(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (c == '"' || c == '\\')
      out.push_back('\\');
    out.push_back(c);
  }
  return out;
}

double us(const BenchResult& result, double quantile) {
  return result.latency->percentile(quantile) / 1000.0;
}

double requests_per_cpu_s(const BenchResult& result) {
  const double cpu = result.client_cpu_s + result.server_cpu_s;
  return cpu > 0 ? static_cast<double>(result.completed) / cpu : 0.0;
}

// Sets the common option `flag` from `value`; false when it is not one.
bool parse_common_flag(const std::string& flag, const std::string& value, CommonOptions& options) {
  if (flag == "--target") {
    options.target = value;
  } else if (flag == "--concurrency") {
    options.concurrency = std::stoi(value);
  } else if (flag == "--rate") {
    options.rate = std::stod(value);
  } else if (flag == "--payload") {
    options.payload = std::stoul(value);
  } else if (flag == "--duration") {
    options.duration_s = std::stod(value);
  } else if (flag == "--warmup") {
    options.warmup_s = std::stod(value);
  } else if (flag == "--server-pid") {
    size_t start = 0;
    while (start < value.size()) {
      const size_t comma = value.find(',', start);
      options.server_pids.push_back(std::stoi(value.substr(start, comma - start)));
      start = comma == std::string::npos ? value.size() : comma + 1;
    }
  } else if (flag == "--timeout-ms") {
    options.timeout_ms = std::stoi(value);
  } else if (flag == "--json") {
    options.json_path = value;
  } else {
    return false;
  }
  return true;
}

}  // namespace

void parse_flags(int argc, char** argv, CommonOptions& options, const FlagSpec& spec,
                 void (*usage)(const std::string& message)) {
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (spec.on_switch && spec.on_switch(flag))
      continue;
    if (i + 1 >= argc)
      usage("missing value for " + flag);
    const std::string value = argv[++i];
    const bool rejected =
        std::find(spec.rejected.begin(), spec.rejected.end(), flag) != spec.rejected.end();
    bool taken = false;
    try {
      taken = !rejected && parse_common_flag(flag, value, options);
      for (const auto& [name, target] : spec.int_flags) {
        if (!taken && flag == name) {
          *target = std::stoi(value);
          taken = true;
        }
      }
      taken = taken || (spec.on_flag && spec.on_flag(flag, value));
    } catch (const std::exception&) {
      usage("bad value for " + flag + ": " + value);
    }
    if (!taken)
      usage("unknown option " + flag);
  }
  if (options.target.empty())
    usage("--target is required");
}

Window measure_window(double warmup_s, double duration_s, const std::vector<pid_t>& server_pids,
                      std::atomic<bool>& measuring) {
  std::this_thread::sleep_for(std::chrono::duration<double>(warmup_s));
  const double client_cpu_start = self_cpu_seconds();
  const double server_cpu_start = processes_cpu_seconds(server_pids);
  const Clock::time_point window_start = Clock::now();
  measuring = true;
  std::this_thread::sleep_for(std::chrono::duration<double>(duration_s));
  measuring = false;
  Window window;
  window.elapsed_s = std::chrono::duration<double>(Clock::now() - window_start).count();
  window.client_cpu_s = self_cpu_seconds() - client_cpu_start;
  window.server_cpu_s = processes_cpu_seconds(server_pids) - server_cpu_start;
  return window;
}

uint64_t BenchResult::error_total() const {
  uint64_t total = 0;
  for (const auto& [code, count] : errors)
    total += count;
  return total;
}

void print_table(const BenchResult& result) {
  const double completed = static_cast<double>(result.completed);
  const std::string load = result.concurrency > 0
                               ? "concurrency " + std::to_string(result.concurrency)
                               : "rate " + std::to_string(static_cast<long>(result.rate));
  // The parallelism column is at least 6 wide ("groups").
  const int width = std::max<int>(6, static_cast<int>(result.parallelism_column.size()));
  std::printf("%-16s %*s %11s %8s %8s %8s %9s %9s %9s %9s %12s %7s\n", "load", width,
              result.parallelism_column.c_str(), "calls/s", "p50_us", "p90_us", "p99_us",
              "p99.9_us", "max_us", "client_s", "server_s", "req/cpu_s", "errors");
  std::printf("%-16s %*d %11.0f %8.1f %8.1f %8.1f %9.1f %9.1f %9.2f %9.2f %12.0f %7llu\n",
              load.c_str(), width, result.parallelism, completed / result.duration_s,
              us(result, 0.5), us(result, 0.9), us(result, 0.99), us(result, 0.999),
              result.latency->max() / 1000.0, result.client_cpu_s, result.server_cpu_s,
              requests_per_cpu_s(result), static_cast<unsigned long long>(result.error_total()));
  for (const auto& [code, count] : result.errors) {
    std::printf("  errors %d %s: %llu\n", code, result.error_name(code).c_str(),
                static_cast<unsigned long long>(count));
  }
}

void write_json(const BenchResult& result, const std::string& path) {
  const double completed = static_cast<double>(result.completed);
  std::ofstream json(path);
  json << "{\"system\":\"" << result.system << "\",\"target\":\"" << json_escape(result.target)
       << "\",\"method\":\"" << result.method << "\",\"payload_bytes\":" << result.payload_bytes
       << ",\"" << result.parallelism_key << "\":" << result.parallelism
       << ",\"concurrency\":" << result.concurrency << ",\"rate\":" << result.rate
       << ",\"duration_s\":" << result.duration_s << ",\"completed\":" << result.completed
       << ",\"calls_per_s\":" << completed / result.duration_s
       << ",\"latency_us\":{\"p50\":" << us(result, 0.5) << ",\"p90\":" << us(result, 0.9)
       << ",\"p99\":" << us(result, 0.99) << ",\"p999\":" << us(result, 0.999)
       << ",\"max\":" << result.latency->max() / 1000.0
       << "},\"client_cpu_s\":" << result.client_cpu_s
       << ",\"server_cpu_s\":" << result.server_cpu_s
       << ",\"requests_per_cpu_s\":" << requests_per_cpu_s(result) << ",\"errors\":{";
  bool first = true;
  for (const auto& [code, count] : result.errors) {
    json << (first ? "" : ",") << "\"" << code << "\":" << count;
    first = false;
  }
  json << "}}\n";
}

}  // namespace percore::bench
