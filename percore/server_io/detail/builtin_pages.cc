#include <percore/server_io/detail/builtin_pages.h>

#include <nlohmann/json.hpp>

#include <percore/base/detail/metrics_registry.h>
#include <percore/proto/frame.h>
#include <percore/server_io/detail/server_core.h>
#include <percore/server_io/detail/process_pool.h>
#include <percore/server_io/detail/worker_pool.h>
#include <percore/version.h>

namespace percore::detail {
namespace {

using prometheus::MetricType;

std::string html_escape(std::string_view text) {
  std::string out;
  for (const char c : text) {
    switch (c) {
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '&':
        out += "&amp;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string_view decode_status_name(DecodeStatus status) {
  switch (status) {
    case DecodeStatus::kBadMagic:
      return "bad_magic";
    case DecodeStatus::kBodyTooLarge:
      return "body_too_large";
    case DecodeStatus::kMetaSizeExceedsBody:
      return "meta_size_exceeds_body";
    case DecodeStatus::kBadMeta:
      return "bad_meta";
    case DecodeStatus::kNeitherRequestNorResponse:
      return "neither_request_nor_response";
    case DecodeStatus::kBadAttachmentSize:
      return "bad_attachment_size";
    case DecodeStatus::kMissingServiceOrMethod:
      return "missing_service_or_method";
    default:
      return "other";
  }
}

nlohmann::json status_json(const ServerCore& core, const ServerStats& stats) {
  nlohmann::json methods = nlohmann::json::object();
  core.services.for_each_method([&](const MethodEntry& entry) {
    const auto found = stats.methods.find(entry.full_name);
    nlohmann::json method;
    method["execution"] = entry.mode == ExecutionMode::kInline       ? "inline"
                          : entry.mode == ExecutionMode::kWorkerPool ? "worker_pool"
                                                                     : "process_pool";
    method["request"] = entry.request_prototype->GetDescriptor()->full_name();
    method["response"] = entry.response_prototype->GetDescriptor()->full_name();
    if (found != stats.methods.end()) {
      const MethodStats& counters = found->second;
      method["calls"] = counters.calls;
      method["errors"] = counters.errors();
      nlohmann::json codes = nlohmann::json::object();
      for (const auto& [code, count] : counters.answers_by_code)
        codes[std::to_string(code)] = count;
      method["answers_by_code"] = codes;
      method["mean_latency_us"] = counters.calls > 0 ? counters.total_latency_us / counters.calls : 0;
      method["max_latency_us"] = counters.max_latency_us;
    }
    methods[entry.full_name] = method;
  });
  nlohmann::json closes = nlohmann::json::object();
  for (const auto& [reason, count] : stats.closes_by_reason)
    closes[close_reason_name(reason)] = count;
  nlohmann::json rejected = nlohmann::json::object();
  for (const auto& [status, count] : stats.rejected_frames)
    rejected[std::string(decode_status_name(status))] = count;
  return {
      {"version", PERCORE_VERSION_STRING},
      {"serving", !core.stopping.load(std::memory_order_relaxed)},
      {"io_threads", core.options.io_threads},
      {"workers", core.options.workers},
      {"worker_queue_depth", core.workers ? core.workers->queued() : 0},
      {"calls_in_flight", std::max<int64_t>(0, core.unanswered_calls())},
      {"methods", methods},
      {"connections",
       {{"open", stats.connections_open},
        {"accepted", stats.connections_accepted},
        {"closed", stats.connections_closed},
        {"refused", stats.connections_refused},
        {"closes_by_reason", closes}}},
      {"rejected_frames", rejected},
      {"replies_dropped", stats.replies_dropped},
      {"handler_exceptions", stats.handler_exceptions},
      {"authentication_failures", stats.authentication_failures},
      {"tls_handshakes", stats.tls_handshakes},
      {"tls_handshake_failures", stats.tls_handshake_failures},
      {"clear_text_refused", stats.clear_text_refused},
      {"streams_accepted", stats.streams_accepted},
      {"stream_frames_for_unknown_streams", stats.stream_frames_for_unknown_streams},
      {"stream_window_overruns", stats.stream_window_overruns},
      {"web_sockets",
       {{"accepted", stats.web_sockets_accepted},
        {"open", stats.web_sockets_open},
        {"messages_rejected", stats.web_socket_messages_rejected}}},
      {"worker_processes",
       {{"target", core.processes ? core.processes->target_workers() : 0},
        {"alive", stats.worker_processes_alive},
        {"queue_depth", core.processes ? core.processes->queued() : 0},
        {"crashes", stats.worker_process_crashes},
        {"kills", stats.worker_process_kills},
        {"respawns", stats.worker_process_respawns}}},
  };
}

std::string status_html(const nlohmann::json& status) {
  std::string html =
      "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>percore status</title>"
      "<style>body{font-family:sans-serif}td,th{padding:2px 8px;text-align:left}</style>"
      "</head><body>\n<h1>percore " +
      html_escape(status["version"].get<std::string>()) + "</h1>\n<p>" +
      (status["serving"].get<bool>() ? "serving" : "stopping") + "; " +
      std::to_string(status["calls_in_flight"].get<int64_t>()) + " calls in flight; " +
      std::to_string(status["worker_queue_depth"].get<size_t>()) + " waiting for a worker</p>\n" +
      "<h2>Methods</h2>\n<table><tr><th>method</th><th>execution</th><th>calls</th>"
      "<th>errors</th><th>mean latency (µs)</th><th>max latency (µs)</th></tr>\n";
  for (const auto& [name, method] : status["methods"].items()) {
    html += "<tr><td>" + html_escape(name) + "</td><td>" +
            method["execution"].get<std::string>() + "</td><td>" +
            std::to_string(method.value("calls", uint64_t{0})) + "</td><td>" +
            std::to_string(method.value("errors", uint64_t{0})) + "</td><td>" +
            std::to_string(method.value("mean_latency_us", uint64_t{0})) + "</td><td>" +
            std::to_string(method.value("max_latency_us", uint64_t{0})) + "</td></tr>\n";
  }
  html += "</table>\n<h2>Connections</h2>\n<table>\n";
  for (const auto& [name, value] : status["connections"].items()) {
    if (value.is_object()) {
      for (const auto& [reason, count] : value.items())
        html += "<tr><td>closed: " + html_escape(reason) + "</td><td>" + count.dump() + "</td></tr>\n";
    } else {
      html += "<tr><td>" + html_escape(name) + "</td><td>" + value.dump() + "</td></tr>\n";
    }
  }
  html += "</table>\n<p><a href=\"/status?format=json\">JSON</a> · <a href=\"/metrics\">metrics</a>"
          "</p>\n</body></html>\n";
  return html;
}

void add_server_metrics(const ServerCore& core, const ServerStats& stats,
                        std::vector<prometheus::MetricFamily>& families) {
  auto calls = family("percore_server_calls_total",
                      "Calls answered by the server, by method and error code (0: OK).",
                      MetricType::Counter);
  auto latency = family("percore_server_call_latency_seconds",
                        "From request received to answer queued, by method.",
                        MetricType::Histogram);
  core.services.for_each_method([&](const MethodEntry& entry) {
    for (const auto& [code, count] : entry.counters.answers_by_code()) {
      auto metric = labelled({{"method", entry.full_name}, {"code", std::to_string(code)}});
      metric.counter.value = static_cast<double>(count);
      calls.metric.push_back(std::move(metric));
    }
    auto metric = labelled({{"method", entry.full_name}});
    const auto buckets = entry.counters.latency_buckets();
    uint64_t cumulative = 0;
    for (size_t i = 0; i < buckets.size(); ++i) {
      cumulative += buckets[i];
      prometheus::ClientMetric::Bucket bucket;
      bucket.cumulative_count = cumulative;
      bucket.upper_bound = i < AnswerCounters::kLatencyBoundsUs.size()
                               ? AnswerCounters::kLatencyBoundsUs[i] / 1e6
                               : std::numeric_limits<double>::infinity();
      metric.histogram.bucket.push_back(bucket);
    }
    metric.histogram.sample_count = cumulative;
    metric.histogram.sample_sum = static_cast<double>(entry.counters.total_latency_us()) / 1e6;
    latency.metric.push_back(std::move(metric));
  });
  families.push_back(std::move(calls));
  families.push_back(std::move(latency));

  auto gauge = [&](std::string name, std::string help, double value) {
    auto result = family(std::move(name), std::move(help), MetricType::Gauge);
    auto metric = labelled({});
    metric.gauge.value = value;
    result.metric.push_back(std::move(metric));
    families.push_back(std::move(result));
  };
  auto counter = [&](std::string name, std::string help, double value) {
    auto result = family(std::move(name), std::move(help), MetricType::Counter);
    auto metric = labelled({});
    metric.counter.value = value;
    result.metric.push_back(std::move(metric));
    families.push_back(std::move(result));
  };
  gauge("percore_server_calls_in_flight", "Calls dispatched to a handler and not yet answered.",
        static_cast<double>(std::max<int64_t>(0, core.unanswered_calls())));
  gauge("percore_server_worker_queue_depth", "Calls waiting for a worker thread.",
        static_cast<double>(core.workers ? core.workers->queued() : 0));
  gauge("percore_server_connections_open", "Connections open now (baidu_std and HTTP).",
        static_cast<double>(stats.connections_open));
  counter("percore_server_connections_accepted_total", "Connections accepted.",
          static_cast<double>(stats.connections_accepted));
  counter("percore_server_connections_refused_total",
          "Connections closed at once past max_connections.",
          static_cast<double>(stats.connections_refused));
  auto closes = family("percore_server_connection_closes_total", "Connections closed, by reason.",
                       MetricType::Counter);
  for (const auto& [reason, count] : stats.closes_by_reason) {
    auto metric = labelled({{"reason", close_reason_name(reason)}});
    metric.counter.value = static_cast<double>(count);
    closes.metric.push_back(std::move(metric));
  }
  families.push_back(std::move(closes));
  auto rejected = family("percore_server_rejected_frames_total",
                         "Requests refused before dispatch (malformed, oversized), by reason.",
                         MetricType::Counter);
  for (const auto& [status, count] : stats.rejected_frames) {
    auto metric = labelled({{"reason", std::string(decode_status_name(status))}});
    metric.counter.value = static_cast<double>(count);
    rejected.metric.push_back(std::move(metric));
  }
  families.push_back(std::move(rejected));
  counter("percore_server_replies_dropped_total", "Answers whose connection had closed.",
          static_cast<double>(stats.replies_dropped));
  counter("percore_server_handler_exceptions_total", "Exceptions that escaped a handler.",
          static_cast<double>(stats.handler_exceptions));
  counter("percore_server_authentication_failures_total",
          "Requests refused for their credential (1004, HTTP 401).",
          static_cast<double>(stats.authentication_failures));
  counter("percore_server_tls_handshakes_total", "TLS handshakes completed.",
          static_cast<double>(stats.tls_handshakes));
  counter("percore_server_tls_handshake_failures_total", "TLS handshakes that failed.",
          static_cast<double>(stats.tls_handshake_failures));
  counter("percore_server_clear_text_refused_total",
          "Clear-text connections refused (tls_required, verify_client).",
          static_cast<double>(stats.clear_text_refused));
  counter("percore_server_streams_accepted_total", "Streams accepted by handlers and connected.",
          static_cast<double>(stats.streams_accepted));
  counter("percore_server_stream_frames_unknown_total",
          "Stream frames for a stream the server does not know (answered RST).",
          static_cast<double>(stats.stream_frames_for_unknown_streams));
  counter("percore_server_stream_window_overruns_total",
          "Streams in worker processes reset because the client wrote past the window.",
          static_cast<double>(stats.stream_window_overruns));
  counter("percore_server_web_sockets_accepted_total",
          "WebSockets carrying a stream (GET /ws/...) whose handshake completed.",
          static_cast<double>(stats.web_sockets_accepted));
  gauge("percore_server_web_sockets_open", "WebSockets carrying a stream open now.",
        static_cast<double>(stats.web_sockets_open));
  counter("percore_server_web_socket_messages_rejected_total",
          "WebSockets closed for a client frame or message refused (1002, 1007, 1008, 1009).",
          static_cast<double>(stats.web_socket_messages_rejected));
  if (core.processes != nullptr) {
    gauge("percore_server_worker_processes_alive",
          "Worker processes of process-pool methods alive now.",
          static_cast<double>(stats.worker_processes_alive));
    gauge("percore_server_worker_process_queue_depth", "Calls waiting for a worker process.",
          static_cast<double>(core.processes->queued()));
    counter("percore_server_worker_process_respawns_total", "Worker processes started to replace one.",
            static_cast<double>(stats.worker_process_respawns));
    auto crashes = family("percore_server_worker_process_crashes_total",
                          "Worker processes that died while running a method, by method.",
                          MetricType::Counter);
    auto kills = family("percore_server_worker_process_kills_total",
                        "Worker processes killed past max_run_ms or the deadline, by method.",
                        MetricType::Counter);
    for (const auto& [name, method] : stats.methods) {
      if (method.worker_crashes > 0) {
        auto metric = labelled({{"method", name}});
        metric.counter.value = static_cast<double>(method.worker_crashes);
        crashes.metric.push_back(std::move(metric));
      }
      if (method.worker_kills > 0) {
        auto metric = labelled({{"method", name}});
        metric.counter.value = static_cast<double>(method.worker_kills);
        kills.metric.push_back(std::move(metric));
      }
    }
    families.push_back(std::move(crashes));
    families.push_back(std::move(kills));
  }
}

}  // namespace

bool serve_builtin_page(const ServerCore& core, std::string_view path, std::string_view query,
                        std::string_view accept, BuiltinPage* page) {
  if (path == "/health") {
    const bool serving = !core.stopping.load(std::memory_order_acquire);
    page->status = serving ? 200 : 503;
    page->body = serving ? "OK\n" : "stopping\n";
    page->content_type = "text/plain; charset=utf-8";
    return true;
  }
  if (path == "/status") {
    const nlohmann::json status = status_json(core, snapshot_stats(core));
    if (accept.find("application/json") != std::string_view::npos ||
        query.find("format=json") != std::string_view::npos) {
      page->body = status.dump(2) + "\n";
      page->content_type = "application/json";
    } else {
      page->body = status_html(status);
      page->content_type = "text/html; charset=utf-8";
    }
    return true;
  }
  if (path == "/metrics") {
    std::vector<prometheus::MetricFamily> families;
    add_server_metrics(core, snapshot_stats(core), families);
    MetricsRegistry::process().collect(families);
    page->body = metrics_text(std::move(families));
    page->content_type = "text/plain; version=0.0.4; charset=utf-8";
    return true;
  }
  return false;
}

}  // namespace percore::detail
