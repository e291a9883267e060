// percore-cli call and describe as a user runs them: real processes over
// loopback (percore-server, percore-cli), stdout and exit status checked;
// --output json parsed. The descriptor sets are written by protoc at build
// time (test/CMakeLists.txt): echo.proto under another file name than the
// compiled-in one, and test_service.proto, whose service percore-cli does
// not have compiled in.

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include <percore/server_io/server.h>
#include "test/integration/discovery_fixture.h"
#include "test/support/child_process.h"
#include "test/support/slack.h"
#include "test/support/test_service_impl.h"

namespace percore {
namespace {

using std::chrono::milliseconds;

struct CliResult {
  int exit_code = -1;  // -1: did not exit by itself in time (killed).
  std::string out;
  std::string err;
};

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

std::string temp_path(const std::string& name) {
  static std::atomic<int> counter{0};
  return ::testing::TempDir() + "percore_cli_" + std::to_string(::getpid()) + "_" +
         std::to_string(counter++) + "_" + name;
}

// Runs percore-cli with `arguments` (and `stdin_text` on its stdin), waits
// a bounded time and returns its exit status and output. Through sh only to
// redirect stdin and stdout to files; `exec` keeps the pid the CLI's, so
// ChildProcess kills the CLI itself if it overruns.
CliResult run_cli(const std::vector<std::string>& arguments, const std::string& stdin_text = "") {
  const std::string in_path = temp_path("in");
  const std::string out_path = temp_path("out");
  const std::string err_path = temp_path("err");
  std::ofstream(in_path) << stdin_text;
  std::vector<std::string> argv = {"/bin/sh",
                                   "-c",
                                   "in=$1; out=$2; shift 2; exec \"$@\" <\"$in\" >\"$out\"",
                                   "sh",
                                   in_path,
                                   out_path,
                                   testing::built_program("examples/percore-cli")};
  argv.insert(argv.end(), arguments.begin(), arguments.end());
  CliResult result;
  std::string error;
  {
    std::unique_ptr<testing::ChildProcess> cli =
        testing::ChildProcess::start(argv, &error, err_path);
    if (cli == nullptr) {
      ADD_FAILURE() << "cannot start percore-cli: " << error;
      return result;
    }
    const std::optional<int> status = cli->wait_exit(testing::scaled(milliseconds(20000)));
    if (!status)
      ADD_FAILURE() << "percore-cli did not exit within 20 s";
    else if (WIFEXITED(*status))
      result.exit_code = WEXITSTATUS(*status);
    else
      ADD_FAILURE() << "percore-cli ended by signal " << WTERMSIG(*status);
  }  // Killed and reaped here if it overran.
  result.out = read_file(out_path);
  result.err = read_file(err_path);
  for (const std::string& path : {in_path, out_path, err_path})
    std::remove(path.c_str());
  return result;
}

// For failure messages: what the CLI printed.
std::string printed(const CliResult& result) {
  return "exit " + std::to_string(result.exit_code) + "\nstdout: " + result.out +
         "\nstderr: " + result.err;
}

nlohmann::json parse_json(const std::string& text) {
  nlohmann::json value = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  EXPECT_FALSE(value.is_discarded()) << "not JSON: " << text;
  return value;
}

std::string echo_descriptor_set() {
  return testing::built_program("test/cli_echo.pb");
}
std::string test_service_descriptor_set() {
  return testing::built_program("test/cli_test_service.pb");
}

class CliCallTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = testing::start_server_process({"--io-threads", "1", "--workers", "1"});
    ASSERT_TRUE(server_.has_value()) << "percore-server did not start";
    target_ = "127.0.0.1:" + std::to_string(server_->port);
  }

  std::optional<testing::ServerProcess> server_;  // Killed and reaped when the test ends.
  std::string target_;
};

TEST_F(CliCallTest, CallsEchoWithJsonAndPrintsTheResponseAsJson) {
  const CliResult result =
      run_cli({"call", target_, "example.EchoService.Echo", R"({"message":"hello from json"})"});
  ASSERT_EQ(result.exit_code, 0) << printed(result);
  const nlohmann::json response = parse_json(result.out);
  EXPECT_EQ(response, nlohmann::json({{"message", "hello from json"}})) << result.out;
  // Pretty by default: one field a line.
  EXPECT_NE(result.out.find("\n  \"message\": \"hello from json\"\n"), std::string::npos)
      << result.out;
}

TEST_F(CliCallTest, CallsIsPrimeThroughAListTargetAndPrintsFalseToo) {
  const std::string list = "list://" + target_;
  CliResult result =
      run_cli({"call", list, "prime.PrimeService.IsPrime", R"({"number":"32416190071"})"});
  ASSERT_EQ(result.exit_code, 0) << printed(result);
  EXPECT_EQ(parse_json(result.out), nlohmann::json({{"isPrime", true}})) << result.out;

  // grpcurl's Service/Method spelling; a proto3 false is printed, not left out.
  result = run_cli({"call", list, "prime.PrimeService/IsPrime", R"({"number":12})"});
  ASSERT_EQ(result.exit_code, 0) << printed(result);
  EXPECT_EQ(parse_json(result.out), nlohmann::json({{"isPrime", false}})) << result.out;
}

TEST_F(CliCallTest, ReadsTheBodyFromStdinAndFromAFile) {
  CliResult result =
      run_cli({"call", target_, "example.EchoService.Echo", "-"}, R"({"message":"from stdin"})");
  ASSERT_EQ(result.exit_code, 0) << printed(result);
  EXPECT_EQ(parse_json(result.out)["message"], "from stdin");

  const std::string body = temp_path("body.json");
  std::ofstream(body) << R"({"message":"from a file"})";
  result = run_cli({"call", target_, "example.EchoService.Echo", "@" + body});
  std::remove(body.c_str());
  ASSERT_EQ(result.exit_code, 0) << printed(result);
  EXPECT_EQ(parse_json(result.out)["message"], "from a file");
}

TEST_F(CliCallTest, OutputJsonWrapsTheResponseWithCodeZero) {
  const CliResult result = run_cli({"call", "--output", "json", target_, "example.EchoService.Echo",
                                    R"({"message":"wrapped"})"});
  ASSERT_EQ(result.exit_code, 0) << printed(result);
  const nlohmann::json out = parse_json(result.out);
  EXPECT_EQ(out["code"], 0) << result.out;
  EXPECT_EQ(out["response"], nlohmann::json({{"message", "wrapped"}})) << result.out;
}

TEST_F(CliCallTest, BadJsonIsAUsageErrorThatSaysSo) {
  const CliResult result =
      run_cli({"call", target_, "example.EchoService.Echo", R"({"message": )"});
  EXPECT_EQ(result.exit_code, 2) << printed(result);
  EXPECT_NE(result.err.find("bad JSON for example.EchoRequest"), std::string::npos)
      << printed(result);
  EXPECT_EQ(result.out, "");
}

TEST_F(CliCallTest, UnknownFieldAndMissingRequiredFieldAreUsageErrors) {
  CliResult result =
      run_cli({"call", target_, "example.EchoService.Echo", R"({"message":"x","bogus_field":1})"});
  EXPECT_EQ(result.exit_code, 2) << printed(result);
  EXPECT_NE(result.err.find("bogus_field"), std::string::npos) << printed(result);

  // EchoRequest.message is proto2 `required`.
  result = run_cli({"call", target_, "example.EchoService.Echo", "{}"});
  EXPECT_EQ(result.exit_code, 2) << printed(result);
  EXPECT_NE(result.err.find("missing field message"), std::string::npos) << printed(result);
}

TEST_F(CliCallTest, UnknownMethodOrServiceIsAUsageError) {
  CliResult result = run_cli({"call", target_, "example.EchoService.Shout", R"({})"});
  EXPECT_EQ(result.exit_code, 2) << printed(result);
  // Names the methods the service does have.
  EXPECT_NE(result.err.find("unknown method example.EchoService.Shout"), std::string::npos)
      << printed(result);
  EXPECT_NE(result.err.find("has Echo"), std::string::npos) << printed(result);

  result = run_cli({"call", target_, "nowhere.NoService.Method", R"({})"});
  EXPECT_EQ(result.exit_code, 2) << printed(result);
  EXPECT_NE(result.err.find("--descriptor-set"), std::string::npos) << printed(result);

  result = run_cli({"call", "--timeout-ms", "0", target_, "example.EchoService.Echo"});
  EXPECT_EQ(result.exit_code, 2) << printed(result);
  EXPECT_NE(result.err.find("usage:"), std::string::npos) << printed(result);
}

TEST(CliCallDeadTargetTest, ClosedPortFailsWithTheErrorCodeInTextAndJson) {
  // A port nobody listens on: bind one, note it, close it.
  int port = 0;
  {
    Server probe;
    ASSERT_TRUE(probe.Start("127.0.0.1:0"));
    port = probe.port();
  }
  const std::string target = "127.0.0.1:" + std::to_string(port);
  CliResult result = run_cli({"call", "--timeout-ms", "2000", target, "example.EchoService.Echo",
                              R"({"message":"anyone?"})"});
  EXPECT_EQ(result.exit_code, 1) << printed(result);
  // "error 112: ..." (no server available) or another code, but a number.
  const size_t at = result.err.find("percore-cli: error ");
  ASSERT_NE(at, std::string::npos) << printed(result);
  EXPECT_GT(std::atoi(result.err.c_str() + at + 19), 0) << printed(result);
  EXPECT_EQ(result.out, "");

  result = run_cli({"call", "--output=json", "--timeout-ms", "2000", target,
                    "example.EchoService.Echo", R"({"message":"anyone?"})"});
  EXPECT_EQ(result.exit_code, 1) << printed(result);
  const nlohmann::json out = parse_json(result.out);
  ASSERT_TRUE(out.contains("code") && out["code"].is_number_integer()) << result.out;
  EXPECT_NE(out["code"].get<int>(), 0) << result.out;
  EXPECT_TRUE(out["error"].is_string()) << result.out;
  EXPECT_FALSE(out.contains("response")) << result.out;
}

TEST(CliDescribeTest, DescribesCompiledInServiceMethodAndMessage) {
  CliResult result = run_cli({"describe", "example.EchoService"});
  ASSERT_EQ(result.exit_code, 0) << printed(result);
  EXPECT_NE(result.out.find("example.EchoService is a service"), std::string::npos) << result.out;
  EXPECT_NE(result.out.find("rpc Echo(.example.EchoRequest) returns (.example.EchoResponse);"),
            std::string::npos)
      << result.out;
  EXPECT_NE(result.out.find("message EchoRequest {"), std::string::npos) << result.out;
  EXPECT_NE(result.out.find("required string message = 1;"), std::string::npos) << result.out;
  EXPECT_NE(result.out.find("(percore/proto/echo.proto, compiled in)"), std::string::npos)
      << result.out;

  // A target is accepted and not contacted (no server reflection).
  result = run_cli({"describe", "127.0.0.1:1", "prime.PrimeService.IsPrime"});
  ASSERT_EQ(result.exit_code, 0) << printed(result);
  EXPECT_NE(result.out.find("is a method"), std::string::npos) << result.out;
  EXPECT_NE(result.out.find("message IsPrimeResponse {"), std::string::npos) << result.out;
  EXPECT_NE(result.err.find("no server reflection"), std::string::npos) << printed(result);

  result = run_cli({"describe", "--output", "json", "grpc.health.v1.HealthCheckResponse"});
  ASSERT_EQ(result.exit_code, 0) << printed(result);
  const nlohmann::json out = parse_json(result.out);
  EXPECT_EQ(out["kind"], "message") << result.out;
  ASSERT_TRUE(out["types"].contains("grpc.health.v1.HealthCheckResponse")) << result.out;
  // The nested enum prints inside its message.
  EXPECT_NE(
      out["types"]["grpc.health.v1.HealthCheckResponse"].get<std::string>().find("SERVING = 1;"),
      std::string::npos)
      << result.out;

  result = run_cli({"describe", "example.NoSuchThing"});
  EXPECT_EQ(result.exit_code, 2) << printed(result);
}

TEST(CliDescribeTest, DescribesAServiceOfADescriptorSetOnly) {
  // percore-cli has no percore.test.TestService compiled in.
  CliResult result = run_cli({"describe", "percore.test.TestService"});
  EXPECT_EQ(result.exit_code, 2) << printed(result);

  result = run_cli({"describe", test_service_descriptor_set(), "percore.test.TestService"});
  ASSERT_EQ(result.exit_code, 0) << printed(result);
  for (const char* method : {"rpc Sleep(", "rpc Fail(", "rpc WhoAmI(", "rpc Bulk("})
    EXPECT_NE(result.out.find(method), std::string::npos) << method << "\n" << result.out;
  EXPECT_NE(result.out.find("message SleepRequest {"), std::string::npos) << result.out;
  EXPECT_NE(result.out.find("(test/proto/test_service.proto, descriptor set)"), std::string::npos)
      << result.out;

  result = run_cli({"describe", "--output", "json", "--descriptor-set",
                    test_service_descriptor_set(), "percore.test.TestService"});
  ASSERT_EQ(result.exit_code, 0) << printed(result);
  const nlohmann::json out = parse_json(result.out);
  EXPECT_EQ(out["kind"], "service");
  ASSERT_TRUE(out["methods"].is_array()) << result.out;
  EXPECT_EQ(out["methods"].size(), 4u) << result.out;
  EXPECT_EQ(out["methods"][0]["requestType"], "percore.test.SleepRequest") << result.out;
}

TEST_F(CliCallTest, DescriptorSetOfACompiledInFileCoexistsWithIt) {
  // The set's echo.proto (file name "echo.proto") defines the very types
  // compiled in as percore/proto/echo.proto: no clash, and the set wins.
  CliResult result =
      run_cli({"describe", "--descriptor-set", echo_descriptor_set(), "example.EchoService"});
  ASSERT_EQ(result.exit_code, 0) << printed(result);
  EXPECT_NE(result.out.find("(echo.proto, descriptor set)"), std::string::npos) << result.out;
  EXPECT_NE(result.out.find("rpc Echo("), std::string::npos) << result.out;

  result = run_cli({"call", "--descriptor-set", echo_descriptor_set(), "--output", "json", target_,
                    "example.EchoService.Echo", R"({"message":"via the set"})"});
  ASSERT_EQ(result.exit_code, 0) << printed(result);
  EXPECT_EQ(parse_json(result.out),
            nlohmann::json({{"code", 0}, {"response", {{"message", "via the set"}}}}))
      << result.out;
}

TEST(CliDescriptorSetCallTest, CallsAServiceKnownOnlyFromTheDescriptorSet) {
  // A server of the test service, in this process; percore-cli knows its
  // types only from the descriptor set.
  ServerOptions options;
  options.io_threads = 1;
  options.workers = 1;
  Server server(options);
  testing::TestServiceImpl test_service;
  ASSERT_TRUE(server.AddService(&test_service));
  std::string error;
  ASSERT_TRUE(server.Start("127.0.0.1:0", &error)) << error;
  const std::string target = "127.0.0.1:" + std::to_string(server.port());
  const std::string set = test_service_descriptor_set();

  CliResult result =
      run_cli({"call", "--descriptor-set", set, target, "percore.test.TestService.Sleep",
               R"({"milliseconds":1,"tag":"42"})"});
  ASSERT_EQ(result.exit_code, 0) << printed(result);
  EXPECT_EQ(parse_json(result.out), nlohmann::json({{"tag", "42"}})) << result.out;

  // The server's own error code and text come back.
  result = run_cli({"call", "--descriptor-set", set, target, "percore.test.TestService.Fail",
                    R"({"code":5001,"text":"refused by the handler"})"});
  EXPECT_EQ(result.exit_code, 1) << printed(result);
  EXPECT_NE(result.err.find("error 5001: refused by the handler"), std::string::npos)
      << printed(result);

  // The deadline of --timeout-ms: 1008.
  result = run_cli({"call", "--descriptor-set", set, "--timeout-ms", "200", "--output", "json",
                    target, "percore.test.TestService.Sleep", R"({"milliseconds":600})"});
  EXPECT_EQ(result.exit_code, 1) << printed(result);
  EXPECT_EQ(parse_json(result.out)["code"], 1008) << result.out;
  server.Stop(milliseconds(0));
}

// A real ZooKeeper and a percore-server registered in it.
using CliZooKeeperTest = DiscoveryTest;

TEST_F(CliZooKeeperTest, ListsInTextAndJsonAndCallsThroughAZkTarget) {
  auto server = start_registered_server();
  ASSERT_TRUE(server.has_value());

  CliResult result = run_cli({"list", registry()});
  ASSERT_EQ(result.exit_code, 0) << printed(result);
  EXPECT_NE(result.out.find("example.EchoService (1 instance)"), std::string::npos) << result.out;
  EXPECT_NE(result.out.find(address_of(*server)), std::string::npos) << result.out;

  result = run_cli({"list", "--output", "json", registry()});
  ASSERT_EQ(result.exit_code, 0) << printed(result);
  const nlohmann::json listed = parse_json(result.out);
  ASSERT_TRUE(listed["services"].is_array()) << result.out;
  bool found = false;
  for (const nlohmann::json& service : listed["services"]) {
    if (service["name"] != kEchoService)
      continue;
    found = true;
    ASSERT_EQ(service["instances"].size(), 1u) << result.out;
    EXPECT_EQ(service["instances"][0]["port"], server->port) << result.out;
    EXPECT_EQ(service["instances"][0]["enabled"], true) << result.out;
  }
  EXPECT_TRUE(found) << result.out;

  result = run_cli({"call", "--output", "json", echo_target(), "example.EchoService.Echo",
                    R"({"message":"through zookeeper"})"});
  ASSERT_EQ(result.exit_code, 0) << printed(result);
  EXPECT_EQ(parse_json(result.out)["response"]["message"], "through zookeeper") << result.out;

  // An unreachable registry: the call fails (1), in JSON too.
  result = run_cli(
      {"list", "--output", "json", "--timeout-ms", "500", "zk://127.0.0.1:1/percore/services"});
  EXPECT_EQ(result.exit_code, 1) << printed(result);
  EXPECT_TRUE(parse_json(result.out)["error"].is_string()) << result.out;
}

}  // namespace
}  // namespace percore
