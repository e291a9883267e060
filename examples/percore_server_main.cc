// percore-server: hosts example.EchoService (inline) and prime.PrimeService
// (worker pool) on one port, over baidu_std and HTTP/JSON (with /health,
// /status and /metrics), and on request the pipeline example's stages
// (--stage-b, --stage-a-next), optionally registered in ZooKeeper. Prints one
// line when ready; SIGTERM or SIGINT stop it gracefully: deregister, wait for
// clients to drop it, drain, close.

#include <csignal>
#include <cstdio>
#include <cerrno>
#include <cstdlib>
#include <limits>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <percore/discovery/zookeeper_registrar.h>
#include <percore/discovery/zookeeper_uri.h>
#include "examples/echo_service.h"
#include "examples/pipeline_service.h"
#include "examples/prime_service.h"
#include <percore/server_io/server.h>
#include <percore/version.h>

namespace {

constexpr std::string_view kUsage =
    "usage: percore-server [--listen HOST:PORT] [--io-threads N] [--workers N]\n"
    "                      [--max-body-bytes N] [--worker-queue N] [--grace-ms N]\n"
    "                      [--max-inflight-per-connection N] [--max-unwritten-bytes N]\n"
    "                      [--max-streams-per-connection N]\n"
    "                      [--max-connections N] [--idle-timeout-ms N]\n"
    "                      [--partial-frame-timeout-ms N] [--close-linger-ms N]\n"
    "                      [--max-http-header-bytes N]\n"
    "                      [--socket-send-buffer BYTES] [--socket-receive-buffer BYTES]\n"
    "                      [--registry zk://HOSTS/BASE/PATH] [--advertise HOST]\n"
    "                      [--registry-credential-file FILE] [--deregister-delay-ms N]\n"
    "                      [--deregister-timeout-ms N] [--zk-session-timeout-ms N]\n"
    "                      [--stage-b] [--stage-a-next TARGET]\n"
    "                      [--prime-isolation thread|process] [--process-workers N]\n"
    "                      [--process-queue N] [--process-memory-limit BYTES]\n"
    "                      [--prime-max-run-ms N] [--prime-allow-faults]\n"
    "                      [--auth-token-file FILE | --auth-token-env NAME]\n"
    "                      [--authenticate-every-call] [--open-builtin-pages]\n"
    "                      [--tls-cert FILE --tls-key FILE] [--tls-required]\n"
    "                      [--tls-client-ca FILE]\n"
    "  --listen          address to serve on (default 127.0.0.1:8000; port 0 picks one)\n"
    "  --io-threads      I/O threads (default: one per core)\n"
    "  --workers         worker threads for IsPrime (default: one per core)\n"
    "  --max-body-bytes  largest request/reply body (default 67108864; at least\n"
    "                    4096, a smaller value is raised to it)\n"
    "  --worker-queue    requests waiting for a worker before 2004 (default 1024)\n"
    "  --grace-ms        how long a stop waits for calls in flight (default 5000)\n"
    "  --max-inflight-per-connection  calls in flight per connection before it is\n"
    "                    no longer read (default 1024)\n"
    "  --max-unwritten-bytes  answer bytes waiting to be written per connection\n"
    "                    before it is no longer read (default 67108864)\n"
    "  --max-streams-per-connection  streams open per connection; past it a\n"
    "                    handler cannot accept one (default 64; 0: no streams)\n"
    "  --max-connections  open connections; more are closed at once (default 0: no\n"
    "                    limit but the descriptor limit)\n"
    "  --idle-timeout-ms  close connections idle this long (default 0: never)\n"
    "  --partial-frame-timeout-ms  close a connection that sent part of a frame and\n"
    "                    then nothing this long (default 10000; 0: never)\n"
    "  --max-http-header-bytes  largest HTTP request line and header fields; more\n"
    "                    is answered 431 (default 16384, at least 1024)\n"
    "  --close-linger-ms  time a closing connection has to take its answers\n"
    "                    (default 1000)\n"
    "  --socket-send-buffer, --socket-receive-buffer  SO_SNDBUF / SO_RCVBUF of\n"
    "                    every connection (default 0: the kernel's; 1: its minimum)\n"
    "  --registry        register each service in ZooKeeper under this base path,\n"
    "                    as Apache Curator instances (EPHEMERAL nodes)\n"
    "  --advertise       address to register (required when listening on 0.0.0.0)\n"
    "  --registry-credential-file  file holding a ZooKeeper digest credential\n"
    "                    user:password (or set PERCORE_ZK_CREDENTIAL); with it only\n"
    "                    holders of the credential can add or remove instances\n"
    "  --deregister-timeout-ms  longest wait for ZooKeeper to confirm the deletes of\n"
    "                    all of this server's nodes together (default 2000); past\n"
    "                    it the session is closed, which removes them too\n"
    "  --deregister-delay-ms  pause between deregistering and draining (default 1000)\n"
    "  --zk-session-timeout-ms  ZooKeeper session timeout (default 10000)\n"
    "  --prime-isolation where IsPrime and FindPrimes run: thread (worker threads,\n"
    "                    the default) or process (worker processes: a crash or\n"
    "                    overrun loses one worker, never the server; a FindPrimes\n"
    "                    stream holds its worker until it ends)\n"
    "  --process-workers worker processes (default: one per core)\n"
    "  --process-queue   calls waiting for a worker process before 2004 (default 1024)\n"
    "  --process-memory-limit  address-space limit of each worker process, bytes\n"
    "                    (default 0: none)\n"
    "  --prime-max-run-ms  with --prime-isolation process: kill a worker whose\n"
    "                    IsPrime runs longer, answering 1008 (default 0: no limit)\n"
    "  --prime-allow-faults  carry out IsPrimeRequest.fault and PrimeChunk.fault\n"
    "                    (crash, loop, exhaust memory, abort), to show isolation;\n"
    "                    otherwise 1003 (an error summary for a chunk)\n"
    "  --auth-token-file serve only clients that send the token in FILE (its\n"
    "                    first line; mode 600; 16 to 4096 bytes of printable ASCII,\n"
    "                    no spaces): baidu_std\n"
    "                    once per connection, HTTP as \"Authorization: Bearer TOKEN\";\n"
    "                    others are answered 1004 (HTTP 401) and closed\n"
    "  --auth-token-env  the same, with the token in environment variable NAME\n"
    "                    (never give the token itself on the command line)\n"
    "  --authenticate-every-call  verify the token on every call, not only on a\n"
    "                    connection's first\n"
    "  --open-builtin-pages  with a token: serve /status and /metrics without it\n"
    "                    (/health is always open)\n"
    "  --tls-cert, --tls-key  serve TLS on the same port (PEM certificate chain\n"
    "                    and private key); clear text is still served unless\n"
    "  --tls-required    clear-text connections are refused\n"
    "  --tls-client-ca   mutual TLS: clients must present a certificate signed\n"
    "                    by a CA in FILE (clear text is then refused)\n"
    "  --stage-b         also host pipeline.StageB (examples/pipeline.proto)\n"
    "  --stage-a-next    also host pipeline.StageA, calling pipeline.StageB at\n"
    "                    TARGET (any Channel target: zk://..., host:port, ...)\n";

[[noreturn]] void usage_error(const std::string& message) {
  std::fprintf(stderr, "percore-server: %s\n%.*s", message.c_str(), static_cast<int>(kUsage.size()),
               kUsage.data());
  std::exit(2);
}

long long parse_number(const std::string& flag, const char* text,
                       long long max = std::numeric_limits<long long>::max()) {
  char* end = nullptr;
  errno = 0;
  const long long value = std::strtoll(text, &end, 10);
  if (end == text || *end != '\0' || value < 0 || errno == ERANGE || value > max)
    usage_error(flag + " needs a number from 0 to " + std::to_string(max));
  return value;
}

int parse_int(const std::string& flag, const char* text) {
  return static_cast<int>(parse_number(flag, text, std::numeric_limits<int>::max()));
}

std::string read_credential_file(const std::string& path) {
  std::ifstream file(path);
  if (!file)
    usage_error("cannot read " + path);
  std::string credential;
  std::getline(file, credential);
  while (!credential.empty() && (credential.back() == '\r' || credential.back() == ' '))
    credential.pop_back();
  if (credential.find(':') == std::string::npos)
    usage_error(path + " must hold user:password");
  return credential;
}

std::string hex(std::string_view bytes) {
  std::ostringstream out;
  for (unsigned char byte : bytes) {
    constexpr char kDigits[] = "0123456789abcdef";
    out << kDigits[byte >> 4] << kDigits[byte & 15];
  }
  return out.str();
}

}  // namespace

int main(int argc, char** argv) {
  // --version wins wherever it stands, as in GNU programs.
  for (int i = 1; i < argc; ++i) {
    if (std::string_view(argv[i]) == "--version") {
      std::printf("%s %s\n", "percore-server", PERCORE_VERSION_STRING);
      return 0;
    }
  }
  std::string listen = "127.0.0.1:8000";
  percore::ServerOptions options;
  long long grace_ms = 5000;
  std::string registry;
  std::string advertise;
  std::string credential;
  long long deregister_delay_ms = 1000;
  long long deregister_timeout_ms = 2000;
  long long session_timeout_ms = 10000;
  // For tests that force a ZooKeeper session expiry: the session id and
  // password are written to this file (hex) whenever a session starts.
  std::string session_file;
  // The pipeline example's stages (examples/pipeline_service.h).
  bool stage_b = false;
  bool prime_allow_faults = false;
  bool prime_in_process = false;
  int prime_max_run_ms = 0;
  std::string stage_a_next;
  if (const char* from_environment = std::getenv("PERCORE_ZK_CREDENTIAL")) {
    credential = from_environment;
  }
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (flag == "--help" || flag == "-h") {
      std::fwrite(kUsage.data(), 1, kUsage.size(), stdout);
      return 0;
    }
    if (flag == "--stage-b") {  // The flags without a value.
      stage_b = true;
      continue;
    }
    if (flag == "--prime-allow-faults") {
      prime_allow_faults = true;
      continue;
    }
    if (flag == "--authenticate-every-call") {
      options.authenticate_every_call = true;
      continue;
    }
    if (flag == "--open-builtin-pages") {
      options.open_builtin_pages = true;
      continue;
    }
    if (flag == "--tls-required") {
      options.tls_required = true;
      continue;
    }
    if (i + 1 >= argc)
      usage_error("missing value for " + flag);
    const char* value = argv[++i];
    if (flag == "--listen") {
      listen = value;
    } else if (flag == "--io-threads") {
      options.io_threads = parse_int(flag, value);
    } else if (flag == "--workers") {
      options.workers = parse_int(flag, value);
    } else if (flag == "--max-body-bytes") {
      options.max_body_bytes = static_cast<size_t>(parse_number(flag, value));
    } else if (flag == "--worker-queue") {
      options.worker_queue_capacity = static_cast<size_t>(parse_number(flag, value));
    } else if (flag == "--max-inflight-per-connection") {
      options.max_inflight_per_connection = parse_int(flag, value);
    } else if (flag == "--max-unwritten-bytes") {
      options.max_unwritten_bytes_per_connection = static_cast<size_t>(parse_number(flag, value));
    } else if (flag == "--max-streams-per-connection") {
      options.max_streams_per_connection = parse_int(flag, value);
    } else if (flag == "--max-connections") {
      options.max_connections = parse_int(flag, value);
    } else if (flag == "--idle-timeout-ms") {
      options.idle_timeout_ms = parse_int(flag, value);
    } else if (flag == "--partial-frame-timeout-ms") {
      options.partial_frame_timeout_ms = parse_int(flag, value);
    } else if (flag == "--max-http-header-bytes") {
      options.max_http_header_bytes = static_cast<size_t>(parse_number(flag, value, 1 << 20));
    } else if (flag == "--close-linger-ms") {
      options.close_linger_ms = parse_int(flag, value);
    } else if (flag == "--socket-send-buffer") {
      options.socket_send_buffer_bytes = parse_int(flag, value);
    } else if (flag == "--socket-receive-buffer") {
      options.socket_receive_buffer_bytes = parse_int(flag, value);
    } else if (flag == "--grace-ms") {
      grace_ms = parse_number(flag, value);
    } else if (flag == "--registry") {
      registry = value;
    } else if (flag == "--advertise") {
      advertise = value;
    } else if (flag == "--auth-token-file" || flag == "--auth-token-env") {
      if (options.authenticator != nullptr)
        usage_error("give one of --auth-token-file and --auth-token-env, once");
      std::string error;
      options.authenticator = flag == "--auth-token-file"
                                  ? percore::TokenAuthenticator::FromFile(value, &error)
                                  : percore::TokenAuthenticator::FromEnvironment(value, &error);
      if (options.authenticator == nullptr)
        usage_error(error);
      // Read: worker processes (forked later) need not inherit it.
      if (flag == "--auth-token-env")
        ::unsetenv(value);
    } else if (flag == "--tls-cert" || flag == "--tls-key" || flag == "--tls-client-ca") {
      if (!options.tls)
        options.tls = percore::TlsOptions{};
      if (flag == "--tls-cert") {
        options.tls->certificate_file = value;
      } else if (flag == "--tls-key") {
        options.tls->private_key_file = value;
      } else {
        options.tls->ca_file = value;
        options.tls->verify_client = true;
      }
    } else if (flag == "--registry-credential-file") {
      credential = read_credential_file(value);
    } else if (flag == "--deregister-timeout-ms") {
      deregister_timeout_ms = parse_number(flag, value);
    } else if (flag == "--deregister-delay-ms") {
      deregister_delay_ms = parse_number(flag, value);
    } else if (flag == "--zk-session-timeout-ms") {
      session_timeout_ms = parse_number(flag, value);
    } else if (flag == "--zk-session-file") {
      session_file = value;
    } else if (flag == "--stage-a-next") {
      stage_a_next = value;
    } else if (flag == "--prime-isolation") {
      if (std::string_view(value) != "thread" && std::string_view(value) != "process")
        usage_error("--prime-isolation must be thread or process");
      prime_in_process = std::string_view(value) == "process";
    } else if (flag == "--process-workers") {
      options.process_workers = parse_int(flag, value);
    } else if (flag == "--process-queue") {
      options.process_queue_capacity = static_cast<size_t>(parse_number(flag, value));
    } else if (flag == "--process-memory-limit") {
      options.process_memory_limit_bytes = static_cast<size_t>(parse_number(flag, value));
    } else if (flag == "--prime-max-run-ms") {
      prime_max_run_ms = parse_int(flag, value);
    } else {
      usage_error("unknown option " + flag);
    }
  }

  if (options.authenticator == nullptr &&
      (options.authenticate_every_call || options.open_builtin_pages)) {
    usage_error("--authenticate-every-call and --open-builtin-pages need --auth-token-file or "
                "--auth-token-env");
  }
  if (options.tls_required && !options.tls)
    usage_error("--tls-required needs --tls-cert and --tls-key");
  if (options.tls && (options.tls->certificate_file.empty() || options.tls->private_key_file.empty()))
    usage_error("TLS needs both --tls-cert and --tls-key");
  std::optional<percore::ZooKeeperUri> registry_uri;
  if (!registry.empty()) {
    std::string error;
    registry_uri = percore::parse_zookeeper_uri(registry, /*service_required=*/false, &error);
    if (!registry_uri)
      usage_error(error);
  }
  const std::string host = listen.substr(0, listen.rfind(':'));
  const bool wildcard = host == "0.0.0.0" || host == "[::]" || host == "::";
  if (registry_uri && wildcard && advertise.empty()) {
    usage_error("--advertise HOST is required to register a server listening on " + host);
  }

  // Block the stop signals before any thread starts, so that every thread
  // inherits the mask: one that comes during startup waits (instead of
  // killing the process) until RunUntilAskedToQuit() takes it.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  percore::Server server(options);
  server.AddService(std::make_unique<percore::examples::EchoServiceImpl>());
  percore::ServiceOptions prime_options;
  prime_options.default_mode =
      prime_in_process ? percore::ExecutionMode::kProcessPool : percore::ExecutionMode::kWorkerPool;
  prime_options.default_max_run_ms = prime_max_run_ms;
  // A browser's FindPrimes (GET /ws/prime.PrimeService/FindPrimes) writes
  // and reads its stream's messages as JSON of these types.
  prime_options.method_stream_types["FindPrimes"] = {"prime.PrimeChunk", "prime.PrimeStreamReply"};
  server.AddService(std::make_unique<percore::examples::PrimeServiceImpl>(prime_allow_faults),
                    prime_options);
  std::vector<std::string> hosted_services = {"example.EchoService", "prime.PrimeService"};
  // Declared after `server`, so destroyed first: its Channel ends stage B's
  // calls still pending while the server's threads still run.
  std::unique_ptr<percore::examples::StageAServiceImpl> stage_a;
  if (!stage_a_next.empty()) {
    stage_a = std::make_unique<percore::examples::StageAServiceImpl>();
    std::string init_error;
    if (!stage_a->Init(stage_a_next, &init_error)) {
      std::fprintf(stderr, "percore-server: --stage-a-next %s: %s\n", stage_a_next.c_str(),
                   init_error.c_str());
      return 1;
    }
    server.AddService(stage_a.get(), percore::examples::StageAServiceImpl::service_options());
    hosted_services.push_back("pipeline.StageA");
  }
  if (stage_b) {
    server.AddService(std::make_unique<percore::examples::StageBServiceImpl>(),
                      percore::examples::StageBServiceImpl::service_options());
    hosted_services.push_back("pipeline.StageB");
  }

  std::string error;
  if (!server.Start(listen, &error)) {
    std::fprintf(stderr, "percore-server: %s\n", error.c_str());
    return 1;
  }

  std::unique_ptr<percore::ZooKeeperRegistrar> registrar;
  if (registry_uri) {
    percore::ZooKeeperOptions zookeeper;
    zookeeper.session_timeout_ms = static_cast<int>(session_timeout_ms);
    zookeeper.digest_credential = credential;
    registrar = std::make_unique<percore::ZooKeeperRegistrar>(*registry_uri, zookeeper);
    if (!session_file.empty()) {
      registrar->set_session_listener([session_file](int64_t id, const std::string& password) {
        const std::string temporary = session_file + ".tmp";
        std::ofstream(temporary) << std::hex << id << " " << hex(password) << "\n";
        std::rename(temporary.c_str(), session_file.c_str());
      });
    }
    std::string registered_host = advertise.empty() ? host : advertise;
    if (registered_host.size() > 2 && registered_host.front() == '[') {
      registered_host = registered_host.substr(1, registered_host.size() - 2);
    }
    if (!registrar->register_services(hosted_services, registered_host, server.port(), &error)) {
      std::fprintf(stderr, "percore-server: cannot register in %s: %s\n", registry.c_str(),
                   error.c_str());
      return 1;
    }
  }
  std::printf("percore-server ready on %s:%d pid %d\n", host.c_str(), server.port(),
              static_cast<int>(getpid()));
  std::fflush(stdout);

  // Returns on SIGTERM or SIGINT with the server still serving: it must
  // leave ZooKeeper before it stops accepting.
  const int signal_number = server.RunUntilAskedToQuit();
  std::fprintf(stderr, "percore-server: signal %d, stopping\n", signal_number);
  if (registrar != nullptr) {
    // Clients drop this server when its nodes go; give them a moment before
    // the drain starts answering 2003. Bounded whatever ZooKeeper does: the
    // whole stop takes at most deregister timeout + close of the session
    // (under 3 s) + deregister delay + grace.
    registrar->deregister(std::chrono::milliseconds(deregister_timeout_ms));
    std::this_thread::sleep_for(std::chrono::milliseconds(deregister_delay_ms));
  }
  server.Stop(std::chrono::milliseconds(grace_ms));
  registrar.reset();

  const percore::ServerStats stats = server.stats();
  uint64_t answered = 0;
  for (const auto& [code, count] : stats.answers_by_code)
    answered += count;
  std::fprintf(stderr,
               "percore-server: stopped; %llu answers, %llu connections, %llu rejected frames, "
               "%llu rejected WebSocket messages, %llu authentication failures, "
               "%llu TLS handshake failures, %llu clear-text connections refused\n",
               static_cast<unsigned long long>(answered),
               static_cast<unsigned long long>(stats.connections_accepted),
               static_cast<unsigned long long>(stats.rejected_frames_total()),
               static_cast<unsigned long long>(stats.web_socket_messages_rejected),
               static_cast<unsigned long long>(stats.authentication_failures),
               static_cast<unsigned long long>(stats.tls_handshake_failures),
               static_cast<unsigned long long>(stats.clear_text_refused));
  return 0;
}
