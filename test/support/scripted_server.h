#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <thread>

namespace percore::testing {

// A baidu_std server over real loopback sockets whose answers a test
// chooses, for the faults a percore server cannot be asked to make at will:
// answering every request 2003 while still accepting connections (a brpc
// server answering ELOGOFF), answering nothing at all. It counts what it
// received, so a test can assert how many requests the client sent.
//
// Owns: its listening socket, its connections and its thread (joined by
// the destructor). Threads: the accessors from any thread.
class ScriptedServer {
 public:
  enum class Answer {
    kOk,              // An empty OK response (parses as any proto3 message).
    kServerStopping,  // 2003, "server is stopping".
    kNothing,         // Reads and counts, never answers.
  };

  // Listens on 127.0.0.1:0. `answer_health_checks`: answer
  // grpc.health.v1.Health.Check with SERVING (whatever `answer` says).
  explicit ScriptedServer(Answer answer, bool answer_health_checks = true);
  ~ScriptedServer();
  ScriptedServer(const ScriptedServer&) = delete;
  ScriptedServer& operator=(const ScriptedServer&) = delete;

  int port() const { return port_; }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }

  // Requests received other than health checks; health checks received;
  // connections accepted.
  uint64_t requests() const { return requests_.load(); }
  uint64_t health_checks() const { return health_checks_.load(); }
  uint64_t connections() const { return connections_.load(); }

 private:
  void run();

  const Answer answer_;
  const bool answer_health_checks_;
  int listen_fd_ = -1;
  int wake_fds_[2] = {-1, -1};
  int port_ = 0;
  std::atomic<uint64_t> requests_{0};
  std::atomic<uint64_t> health_checks_{0};
  std::atomic<uint64_t> connections_{0};
  std::thread thread_;
};

}  // namespace percore::testing
