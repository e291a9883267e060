#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "examples/echo_service.h"
#include <percore/server_io/server.h>

namespace percore::testing {

// A percore::Server on 127.0.0.1:0 hosting the echo service (inline), one
// I/O thread and one worker unless `options` says otherwise: the client
// tests' healthy server. Stops when destroyed.
class EchoServer {
 public:
  explicit EchoServer(ServerOptions options = {}) {
    if (options.io_threads == 0)
      options.io_threads = 1;
    if (options.workers == 0)
      options.workers = 1;
    server_ = std::make_unique<Server>(options);
    server_->AddService(&echo_);
    std::string error;
    EXPECT_TRUE(server_->Start("127.0.0.1:0", &error)) << error;
  }
  std::string address() const { return "127.0.0.1:" + std::to_string(server_->port()); }
  Server& server() { return *server_; }

 private:
  examples::EchoServiceImpl echo_;
  std::unique_ptr<Server> server_;
};

}  // namespace percore::testing
