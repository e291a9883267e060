#include "test/fault/soak_report.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>

#include <percore/proto/error_code.h>
#include "test/support/child_process.h"

namespace percore::testing {
namespace {

using nlohmann::json;

double ms(int64_t us) {
  return static_cast<double>(us) / 1000.0;
}

// Calls [first, last) issued in [from_us, to_us).
std::pair<size_t, size_t> issued_between(const std::vector<CallRecord>& records, size_t issued,
                                         int64_t from_us, int64_t to_us) {
  const auto begin = records.begin();
  const auto end = records.begin() + static_cast<std::ptrdiff_t>(issued);
  const auto by_issue = [](const CallRecord& record, int64_t at) { return record.issued_us < at; };
  const auto first = std::lower_bound(begin, end, from_us, by_issue);
  const auto last = std::lower_bound(first, end, to_us, by_issue);
  return {static_cast<size_t>(first - begin), static_cast<size_t>(last - begin)};
}

json codes_of(const std::vector<CallRecord>& records, size_t first, size_t last) {
  std::map<int32_t, uint64_t> counts;
  for (size_t id = first; id < last; ++id)
    ++counts[records[id].code];
  json codes = json::object();
  for (const auto& [code, count] : counts) {
    const std::string name = code == -2   ? "wrong answer"
                             : code == -1 ? "never ended"
                                          : error_code_name(code);
    codes[std::to_string(code) + " " + name] = count;
  }
  return codes;
}

}  // namespace

void RssMonitor::start() {
  thread_ = std::thread([this] {
    while (!stop_.load()) {
      for (const auto& [process, pid] : pids_()) {
        const long kib = pid > 0 ? resident_kib(pid) : -1;
        if (kib > 0) {
          std::lock_guard lock(mutex_);
          samples_.push_back({load_.now_us(), process, pid, kib});
        }
      }
      for (int slice = 0; slice < 10 && !stop_.load(); ++slice)
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  });
}

void RssMonitor::stop() {
  stop_.store(true);
  if (thread_.joinable())
    thread_.join();
}

std::vector<RssMonitor::Sample> RssMonitor::samples() const {
  std::lock_guard lock(mutex_);
  return samples_;
}

std::vector<std::string> analyse_soak(const SoakLoad& load, const std::vector<Episode>& episodes,
                                      const std::vector<RssMonitor::Sample>& rss,
                                      const std::vector<std::string>& servers,
                                      const SoakBounds& bounds, json* summary) {
  std::vector<std::string> failures;
  const std::vector<CallRecord>& records = load.records();
  const size_t issued = load.issued();
  json& out = *summary;

  // --- Every call ended exactly once (the ledger, id by id). ---
  const std::string ledger = load.ledger().violations(issued);
  const CallLedger::Tally tally = load.ledger().tally(issued);
  int64_t worst_overshoot_us = 0;
  uint64_t overshoots = 0;
  for (size_t id = 0; id < issued; ++id) {
    const CallRecord& record = records[id];
    if (record.ended_us < 0)
      continue;
    const int64_t overshoot = record.ended_us - record.deadline_us;
    worst_overshoot_us = std::max(worst_overshoot_us, overshoot);
    if (overshoot > bounds.deadline_overshoot_us)
      ++overshoots;
  }
  if (!ledger.empty())
    failures.push_back(std::string("ledger: ") + ledger);
  if (overshoots > 0) {
    failures.push_back(std::to_string(overshoots) + " calls ended more than " +
                       std::to_string(bounds.deadline_overshoot_us / 1000) +
                       " ms after their deadline (worst " + std::to_string(ms(worst_overshoot_us)) +
                       " ms)");
  }
  std::map<int32_t, uint64_t> disallowed;
  for (size_t id = 0; id < issued; ++id) {
    const int32_t code = records[id].code;
    if (records[id].ended_us >= 0 &&
        std::find(bounds.allowed_codes.begin(), bounds.allowed_codes.end(), code) ==
            bounds.allowed_codes.end())
      ++disallowed[code];
  }
  for (const auto& [code, count] : disallowed) {
    failures.push_back(std::to_string(count) + " calls ended with " + std::to_string(code) + " (" +
                       (code == -2 ? std::string("a wrong answer") : error_code_name(code)) +
                       "), which no fault here explains");
  }
  // Before the first fault: every call that also ended before it succeeded.
  const int64_t calm_until = episodes.empty() ? load.now_us() : episodes.front().began_us;
  uint64_t calm_calls = 0;
  uint64_t calm_failures = 0;
  for (size_t id = 0; id < issued && records[id].issued_us < calm_until; ++id) {
    if (records[id].ended_us < 0 || records[id].ended_us >= calm_until)
      continue;
    ++calm_calls;
    calm_failures += records[id].code != 0 ? 1 : 0;
  }
  out["calm_start"] = {{"calls", calm_calls}, {"failed", calm_failures}};
  if (calm_failures > 0) {
    failures.push_back(std::to_string(calm_failures) + " of " + std::to_string(calm_calls) +
                       " calls failed before the first fault");
  }
  if (episodes.empty())
    failures.push_back("no fault episode ran");
  const uint64_t lost = tally.never;
  const uint64_t doubled = tally.more_than_once;
  out["calls_issued"] = issued;
  out["calls_ended"] = load.ended();
  out["calls_lost"] = lost;
  out["calls_ended_twice"] = doubled;
  out["ledger"] = ledger.empty() ? "every call ended exactly once" : ledger;
  out["worst_overshoot_past_deadline_ms"] = ms(std::max<int64_t>(0, worst_overshoot_us));
  out["codes"] = codes_of(records, 0, issued);

  // --- Episode by episode. ---
  json rows = json::array();
  for (size_t index = 0; index < episodes.size(); ++index) {
    const Episode& episode = episodes[index];
    json row;
    const auto [first, last] = issued_between(records, issued, episode.began_us, episode.ended_us);
    row["began_s"] = ms(episode.began_us) / 1000.0;
    row["faults_ended_s"] = ms(episode.faults_ended_us) / 1000.0;
    row["calls"] = last - first;
    uint64_t episode_lost = 0;
    uint64_t episode_doubled = 0;
    for (size_t id = first; id < last; ++id) {
      const int ends = load.ledger().ends(id);
      episode_lost += ends == 0 ? 1 : 0;
      episode_doubled += ends > 1 ? 1 : 0;
    }
    row["calls_lost"] = episode_lost;
    row["calls_ended_twice"] = episode_doubled;
    row["codes"] = codes_of(records, first, last);
    int64_t episode_overshoot = 0;
    for (size_t id = first; id < last; ++id)
      episode_overshoot =
          std::max(episode_overshoot, records[id].ended_us - records[id].deadline_us);
    row["worst_overshoot_past_deadline_ms"] = ms(std::max<int64_t>(0, episode_overshoot));
    const std::string label = std::string("episode ") + std::to_string(index + 1);

    json faults = json::array();
    for (const Fault& fault : episode.faults) {
      json item;
      item["fault"] = fault_kind_name(fault.kind);
      item["target"] = fault.target;
      item["injection"] = fault_injection(fault.kind);
      item["began_s"] = ms(fault.began_us) / 1000.0;
      item["ended_s"] = ms(fault.ended_us) / 1000.0;
      if (!fault.error.empty()) {
        item["error"] = fault.error;
        failures.push_back(label + ", " + fault_kind_name(fault.kind) + ": " + fault.error);
      }
      if (fault.kind == FaultKind::kPartition) {
        // A call sent to the partitioned server fails at its deadline or is
        // sent again once the connection is found dead: either way it is
        // slow. So once detection is over, every call must be quick and
        // succeed. Checked when the partition is the episode's only fault
        // (a frozen server beside it slows calls down on its own).
        const auto [from, to] = issued_between(
            records, issued, fault.began_us + bounds.dead_detection_us, fault.ended_us);
        int64_t slowest_us = 0;
        uint64_t failed = 0;
        for (size_t id = from; id < to; ++id) {
          if (records[id].kind == CallKind::kSlowPrime)
            continue;
          slowest_us = std::max(slowest_us, records[id].ended_us - records[id].issued_us);
          failed += records[id].code != 0 ? 1 : 0;
        }
        item["after_detection"] = {
            {"calls", to - from}, {"failed", failed}, {"slowest_ms", ms(slowest_us)}};
        if (episode.faults.size() == 1 &&
            (failed > 0 || slowest_us > bounds.slow_call_after_detection_us)) {
          failures.push_back(label + ": calls issued " +
                             std::to_string(bounds.dead_detection_us / 1000) +
                             " ms or more into the partition of " + fault.target +
                             " still went to it: " + std::to_string(failed) +
                             " failed, the slowest took " + std::to_string(ms(slowest_us)) + " ms");
        }
      }
      faults.push_back(item);
    }
    row["faults"] = faults;

    // Success back to 100 %: the last call issued after the faults ended
    // that failed (slow-handler calls fail by design and do not count).
    const auto [after, end] =
        issued_between(records, issued, episode.faults_ended_us, episode.ended_us);
    // A call still running when the next episode began, on a server that
    // episode's faults hit (it was frozen, killed... with the call on it),
    // failed of that fault: failures during faults are allowed. Every other
    // failure counts here.
    std::vector<int> next_targets;
    if (index + 1 < episodes.size()) {
      for (const Fault& next : episodes[index + 1].faults) {
        if (targets_server(next.kind))
          next_targets.push_back(next.server);
      }
    }
    int64_t last_failure_us = -1;
    uint64_t excused = 0;
    for (size_t id = after; id < end; ++id) {
      const CallRecord& record = records[id];
      if (record.code == 0 || record.kind == CallKind::kSlowPrime)
        continue;
      if (record.ended_us >= episode.ended_us && std::find(next_targets.begin(), next_targets.end(),
                                                           record.server) != next_targets.end()) {
        ++excused;
        continue;
      }
      last_failure_us = record.issued_us;
    }
    row["recovery_window_calls"] = end - after;
    row["recovery_window_failures_caught_by_the_next_fault"] = excused;
    // The first and last few failures, to see what failed and where.
    json failed_calls = json::array();
    std::vector<size_t> failed_ids;
    for (size_t id = first; id < last; ++id) {
      if (records[id].code != 0)
        failed_ids.push_back(id);
    }
    for (size_t n = 0; n < failed_ids.size(); ++n) {
      if (n >= 5 && n + 5 < failed_ids.size())
        continue;
      const CallRecord& record = records[failed_ids[n]];
      failed_calls.push_back(
          {{"id", failed_ids[n]},
           {"kind", call_kind_name(record.kind)},
           {"issued_s", ms(record.issued_us) / 1000.0},
           {"took_ms", ms(record.ended_us - record.issued_us)},
           {"code", record.code},
           {"server", record.server < 0 ? std::string("none") : servers.at(record.server)}});
    }
    row["failed_calls_first_and_last"] = failed_calls;
    // And from the episode's start: how long the fault made calls fail.
    int64_t last_episode_failure_us = -1;
    for (size_t id = first; id < last; ++id) {
      if (records[id].code != 0 && records[id].kind != CallKind::kSlowPrime)
        last_episode_failure_us = records[id].issued_us;
    }
    row["failures_until_ms_into_episode"] =
        last_episode_failure_us < 0 ? 0.0 : ms(last_episode_failure_us - episode.began_us);
    const int64_t recovery_us =
        last_failure_us < 0 ? 0 : last_failure_us - episode.faults_ended_us + 1;
    row["recovery_ms"] = ms(recovery_us);
    const bool clean_tail =
        last_failure_us < 0 || episode.ended_us - last_failure_us >= bounds.clean_tail_us;
    if (recovery_us > bounds.recovery_us || !clean_tail) {
      failures.push_back(label + ": success did not return to 100 % (last failure " +
                         std::to_string(ms(recovery_us)) + " ms after the faults ended, " +
                         std::to_string(ms(episode.ended_us - episode.faults_ended_us)) +
                         " ms of quiet)");
    }
    // Peak RSS over the episode, per process.
    json peaks = json::object();
    for (const RssMonitor::Sample& sample : rss) {
      if (sample.at_us < episode.began_us || sample.at_us > episode.ended_us)
        continue;
      const long previous = peaks.contains(sample.process) ? peaks[sample.process].get<long>() : 0;
      peaks[sample.process] = std::max(previous, sample.kib);
    }
    row["peak_rss_kib"] = peaks;
    rows.push_back(row);
  }
  out["episodes"] = rows;

  // --- Calls answered by each server (large bodies: the one with small
  // socket buffers). ---
  json by_server = json::object();
  std::vector<uint64_t> answered;
  for (size_t server = 0; server < servers.size(); ++server) {
    uint64_t ok = 0;
    uint64_t large_ok = 0;
    for (size_t id = 0; id < issued; ++id) {
      if (records[id].server == static_cast<int>(server) && records[id].code == 0) {
        ++ok;
        large_ok += records[id].kind == CallKind::kLargeEcho ? 1 : 0;
      }
    }
    by_server[servers[server]] = {{"answered_ok", ok}, {"large_echoes_ok", large_ok}};
    answered.push_back(ok);
  }
  // Every server took its share over the run (a third when all is well; at
  // least a twentieth): one that crashed, or was never let back into the
  // rotation, would not.
  uint64_t answered_total = 0;
  for (const uint64_t ok : answered)
    answered_total += ok;
  for (size_t server = 0; server < answered.size(); ++server) {
    if (answered[server] * 20 < answered_total) {
      failures.push_back(servers[server] + " answered only " + std::to_string(answered[server]) +
                         " of " + std::to_string(answered_total) +
                         " successful calls: out of the rotation for most of the run");
    }
  }
  out["by_server"] = by_server;

  // --- Memory: first, last and peak sample of each host's process(es);
  // growth per process (a restarted server starts afresh). ---
  json memory = json::object();
  std::map<std::pair<std::string, pid_t>, std::pair<long, long>> per_process;  // first, last
  for (const RssMonitor::Sample& sample : rss) {
    if (!memory.contains(sample.process)) {
      memory[sample.process] = {{"start_kib", sample.kib},
                                {"end_kib", sample.kib},
                                {"peak_kib", sample.kib},
                                {"processes", 0},
                                {"largest_growth_kib", 0}};
    }
    json& entry = memory[sample.process];
    entry["end_kib"] = sample.kib;
    entry["peak_kib"] = std::max(entry["peak_kib"].get<long>(), sample.kib);
    const auto key = std::make_pair(sample.process, sample.pid);
    if (per_process.count(key) == 0) {
      per_process[key] = {sample.kib, sample.kib};
      entry["processes"] = entry["processes"].get<int>() + 1;
    }
    per_process[key].second = sample.kib;
  }
  for (const auto& [key, first_last] : per_process) {
    json& entry = memory[key.first];
    const long growth = first_last.second - first_last.first;
    entry["largest_growth_kib"] = std::max(entry["largest_growth_kib"].get<long>(), growth);
  }
  for (auto& [process, entry] : memory.items()) {
    const long growth = entry["largest_growth_kib"].get<long>();
    const long bound =
        process == "client" ? bounds.client_rss_growth_kib : bounds.server_rss_growth_kib;
    entry["growth_bound_kib"] = bound;
    if (growth > bound) {
      failures.push_back(process + "'s RSS grew by " + std::to_string(growth) +
                         " KiB in one process (bound: " + std::to_string(bound) + " KiB)");
    }
  }
  out["rss"] = memory;
  out["passed"] = failures.empty();
  out["failures"] = failures;
  return failures;
}

std::string format_soak_summary(const json& summary) {
  std::string text;
  char line[512];
  std::snprintf(line, sizeof(line),
                "calls issued %llu, ended %llu, lost %llu, ended twice %llu; worst end past a "
                "deadline %.1f ms\n",
                summary["calls_issued"].get<unsigned long long>(),
                summary["calls_ended"].get<unsigned long long>(),
                summary["calls_lost"].get<unsigned long long>(),
                summary["calls_ended_twice"].get<unsigned long long>(),
                summary["worst_overshoot_past_deadline_ms"].get<double>());
  text += line;
  text += "codes: " + summary["codes"].dump() + "\n";
  int number = 0;
  for (const json& row : summary["episodes"]) {
    ++number;
    std::string faults;
    for (const json& fault : row["faults"]) {
      if (!faults.empty())
        faults += " + ";
      faults += fault["fault"].get<std::string>() + " [" + fault["target"].get<std::string>() + "]";
      if (fault.contains("after_detection")) {
        const json& after = fault["after_detection"];
        faults += std::string(" (after detection: ") +
                  std::to_string(after["failed"].get<uint64_t>()) + " failed, slowest " +
                  std::to_string(static_cast<int>(after["slowest_ms"].get<double>())) + " ms)";
      }
    }
    std::snprintf(line, sizeof(line),
                  "%2d  t=%6.1f s  %-90s recovery %7.1f ms  worst past deadline %6.1f ms\n", number,
                  row["began_s"].get<double>(), faults.c_str(), row["recovery_ms"].get<double>(),
                  row["worst_overshoot_past_deadline_ms"].get<double>());
    text += line;
    text += std::string("      calls ") + std::to_string(row["calls"].get<uint64_t>()) +
            ", codes " + row["codes"].dump() + ", peak RSS KiB " + row["peak_rss_kib"].dump() +
            "\n";
  }
  text += "RSS KiB: " + summary["rss"].dump() + "\n";
  text += "by server: " + summary["by_server"].dump() + "\n";
  for (const json& failure : summary["failures"])
    text += std::string("FAILED: ") + failure.get<std::string>() + "\n";
  return text;
}

}  // namespace percore::testing
