// Call authentication (ServerOptions::authenticator, ChannelOptions::
// authenticator): missing, wrong and right credentials over baidu_std and
// HTTP, what is answered, what is closed, what is counted, and that no
// credential ever reaches the log.

#include <gtest/gtest.h>

#include <sys/stat.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <percore/base/authenticator.h>
#include <percore/client_proxy/channel.h>
#include <percore/proto/echo.pb.h>
#include <percore/server_io/server.h>
#include "test/integration/server_fixture.h"
#include "test/support/eventually.h"
#include "test/support/http_client.h"
#include "test/support/stderr_capture.h"

namespace percore::testing {
namespace {

using std::chrono::milliseconds;

// A fresh random token per test: a grep of the log for it cannot match by
// chance.
std::string random_token() {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::random_device device;
  std::string token;
  for (int i = 0; i < 40; ++i)
    token.push_back(kAlphabet[device() % 64]);
  return token;
}

std::shared_ptr<TokenAuthenticator> token_authenticator(const std::string& token) {
  std::string error;
  auto authenticator = TokenAuthenticator::FromToken(token, &error);
  EXPECT_NE(authenticator, nullptr) << error;
  return authenticator;
}

// Echoes who the connection proved to be: "<user>/<is_service>", or
// "anonymous" without an AuthContext.
class WhoAmIEcho final : public example::EchoService {
 public:
  void Echo(google::protobuf::RpcController* controller, const example::EchoRequest*,
            example::EchoResponse* response, google::protobuf::Closure* done) override {
    const AuthContext* auth = static_cast<ServerController*>(controller)->auth_context();
    response->set_message(auth == nullptr ? "anonymous"
                                          : auth->user + "/" + (auth->is_service ? "1" : "0"));
    done->Run();
  }
};

class AuthTest : public ServerTest {
 protected:
  void start_with_token(const std::string& token, bool every_call = false,
                        bool open_pages = false) {
    ServerOptions options;
    options.authenticator = token_authenticator(token);
    options.authenticate_every_call = every_call;
    options.open_builtin_pages = open_pages;
    start(options);
  }

  std::unique_ptr<Channel> channel(std::shared_ptr<const Authenticator> authenticator,
                                   bool every_call = false) {
    ChannelOptions options;
    options.authenticator = std::move(authenticator);
    options.credential_on_every_call = every_call;
    options.private_groups = ClientRuntimeOptions{.groups = 1};
    options.timeout_ms = static_cast<int>(scaled(milliseconds(3000)).count());
    auto channel = std::make_unique<Channel>();
    std::string error;
    EXPECT_TRUE(channel->Init("127.0.0.1:" + std::to_string(server_->port()), options, &error))
        << error;
    return channel;
  }

  // Calls Echo `calls` times in turn; returns each call's code, by call index.
  static std::vector<int> echo_codes(Channel& channel, int calls,
                                     std::vector<std::string>* texts = nullptr) {
    std::vector<int> codes;
    example::EchoService_Stub stub(&channel);
    for (int i = 0; i < calls; ++i) {
      Controller controller;
      example::EchoRequest request;
      request.set_message("call " + std::to_string(i));
      example::EchoResponse response;
      stub.Echo(&controller, &request, &response, nullptr);
      codes.push_back(controller.ErrorCode());
      if (texts != nullptr)
        texts->push_back(controller.ErrorText());
      if (!controller.Failed()) {
        EXPECT_EQ(response.message(), request.message());
      }
    }
    return codes;
  }

  // Echo calls 1..credentials.size() in one write, call i carrying
  // credentials[i - 1] as its authentication_data (empty: none).
  static std::string pipelined_echoes(const std::vector<std::string>& credentials) {
    example::EchoRequest request;
    request.set_message("x");
    std::string burst;
    for (size_t i = 0; i < credentials.size(); ++i) {
      RequestParts parts = echo_request(static_cast<int64_t>(i + 1), request);
      parts.authentication_data = credentials[i];
      burst += BlockingClient::encode_request(parts);
    }
    return burst;
  }

  // Reads the answers of calls 1..codes.size(), in order, each with its code.
  static void expect_answers(BlockingClient& client, const std::vector<int>& codes) {
    for (int64_t id = 1; id <= static_cast<int64_t>(codes.size()); ++id) {
      ReceivedFrame frame;
      ASSERT_EQ(client.receive(frame, kReceiveTimeout), ReceiveStatus::kFrame) << "call " << id;
      EXPECT_EQ(frame.correlation_id(), id);
      EXPECT_EQ(frame.error_code(), codes[id - 1]) << "call " << id << ": " << frame.error_text();
    }
  }

  uint64_t unauthenticated_closes() const {
    const ServerStats stats = server_->stats();
    const auto found = stats.closes_by_reason.find(CloseReason::kUnauthenticated);
    return found == stats.closes_by_reason.end() ? 0 : found->second;
  }
};

TEST_F(AuthTest, AChannelWithoutACredentialGets1004OnEveryCallAndItsConnectionIsClosed) {
  const std::string token = random_token();
  start_with_token(token);
  auto plain = channel(nullptr);
  std::vector<std::string> texts;
  const std::vector<int> codes = echo_codes(*plain, 5, &texts);
  for (size_t i = 0; i < codes.size(); ++i) {
    EXPECT_EQ(codes[i], 1004) << "call " << i << ": " << texts[i];
    EXPECT_NE(texts[i].find("credential"), std::string::npos) << texts[i];
  }
  EXPECT_GE(server_->stats().authentication_failures, 1u);
  EXPECT_TRUE(eventually([&] { return unauthenticated_closes() >= 1; }, scaled(milliseconds(3000))));
  EXPECT_GE(server_->stats().answers_by_code.at(1004), 1u);
}

TEST_F(AuthTest, AWrongTokenGets1004NamingTheReasonAndNeverTheToken) {
  const std::string token = random_token();
  const std::string wrong = random_token();
  start_with_token(token);
  StderrCapture capture;
  {
    auto client = channel(token_authenticator(wrong));
    std::vector<std::string> texts;
    const std::vector<int> codes = echo_codes(*client, 3, &texts);
    for (size_t i = 0; i < codes.size(); ++i) {
      EXPECT_EQ(codes[i], 1004) << "call " << i << ": " << texts[i];
      EXPECT_NE(texts[i].find("wrong token"), std::string::npos) << texts[i];
      EXPECT_EQ(texts[i].find(wrong), std::string::npos);
      EXPECT_EQ(texts[i].find(token), std::string::npos);
    }
  }
  // HTTP with the wrong token, and with the right one, are logged (or not)
  // without either.
  ASSERT_TRUE(http_get(server_->port(), "/status", {{"Authorization", "Bearer " + wrong}}));
  ASSERT_TRUE(http_get(server_->port(), "/status", {{"Authorization", "Bearer " + token}}));
  const std::string log = capture.stop();
  EXPECT_NE(log.find("authentication failed: wrong token"), std::string::npos) << log;
  EXPECT_NE(log.find("127.0.0.1:"), std::string::npos) << log;  // The peer's address.
  EXPECT_EQ(log.find(wrong), std::string::npos) << log;
  EXPECT_EQ(log.find(token), std::string::npos) << log;
}

TEST_F(AuthTest, TheRightTokenIsServedAndHandlersSeeWhoTheClientIs) {
  const std::string token = random_token();
  ServerOptions options;
  options.authenticator = token_authenticator(token);
  options.io_threads = 1;
  server_ = std::make_unique<Server>(options);
  WhoAmIEcho who;
  ASSERT_TRUE(server_->AddService(&who));
  ASSERT_TRUE(server_->Start("127.0.0.1:0"));
  auto client = channel(token_authenticator(token));
  example::EchoService_Stub stub(client.get());
  for (int i = 0; i < 20; ++i) {
    Controller controller;
    example::EchoRequest request;
    request.set_message("who");
    example::EchoResponse response;
    stub.Echo(&controller, &request, &response, nullptr);
    ASSERT_FALSE(controller.Failed()) << "call " << i << ": " << controller.ErrorText();
    EXPECT_EQ(response.message(), "token/1") << "call " << i;
  }
  EXPECT_EQ(server_->stats().authentication_failures, 0u);
  // Over HTTP too, per request.
  const auto answer = http_post(server_->port(), "/example.EchoService/Echo",
                                "{\"message\":\"who\"}", {{"Authorization", "bearer   " + token}});
  ASSERT_TRUE(answer);
  EXPECT_EQ(answer->status, 200u) << answer->body;
  EXPECT_NE(answer->body.find("token/1"), std::string::npos) << answer->body;
}

TEST_F(AuthTest, RequestsReadBehindARefusedFirstRequestAreEachAnswered1004ThenTheConnectionCloses) {
  start_with_token(random_token());
  auto client = connect();
  ASSERT_TRUE(client->send_bytes(pipelined_echoes({"", "", "", ""})));
  expect_answers(*client, {1004, 1004, 1004, 1004});
  EXPECT_TRUE(client->wait_closed(kReceiveTimeout));
  EXPECT_EQ(server_->stats().authentication_failures, 1u);  // The first; the rest follow it.
}

TEST_F(AuthTest, TheFirstRequestsCredentialAuthenticatesTheWholeConnection) {
  const std::string token = random_token();
  start_with_token(token);
  auto client = connect();
  ASSERT_TRUE(client->send_bytes(pipelined_echoes({token, "", "", ""})));
  expect_answers(*client, {0, 0, 0, 0});
  EXPECT_EQ(server_->stats().authentication_failures, 0u);
}

// A stranger cannot make the server hold a body: the first request is
// judged by its meta, answered 1004 before its body comes, and a meta too
// large for a credential is refused from its header alone.
TEST_F(AuthTest, AStrangersFirstRequestIsRefusedFromItsMetaBeforeItsBodyArrives) {
  start_with_token(random_token());
  {
    auto client = connect();
    example::EchoRequest request;
    request.set_message(std::string(1 << 20, 'x'));  // 1 MiB body
    RequestParts parts = echo_request(7, request);
    parts.authentication_data = random_token();
    const std::string frame = BlockingClient::encode_request(parts);
    // Header, meta and 1 KiB of the body; the rest never sent.
    ASSERT_TRUE(client->send_bytes(std::string_view(frame).substr(0, 2048)));
    ReceivedFrame answer;
    ASSERT_EQ(client->receive(answer, kReceiveTimeout), ReceiveStatus::kFrame);
    EXPECT_EQ(answer.correlation_id(), 7);
    EXPECT_EQ(answer.error_code(), 1004);
    EXPECT_NE(answer.error_text().find("wrong token"), std::string::npos) << answer.error_text();
    EXPECT_TRUE(client->wait_closed(kReceiveTimeout));
  }
  {
    // A meta of 1 MiB (a huge "credential"), announced in the header.
    auto client = connect();
    std::string header = "PRPC";
    const uint32_t body = 1u << 20, meta = 1u << 20;
    for (const uint32_t value : {body, meta}) {
      for (int shift = 24; shift >= 0; shift -= 8)
        header.push_back(static_cast<char>((value >> shift) & 0xFF));
    }
    ASSERT_TRUE(client->send_bytes(header + std::string(100, '\x3a')));
    EXPECT_TRUE(client->wait_closed(kReceiveTimeout));
  }
  EXPECT_EQ(server_->stats().authentication_failures, 2u);
  EXPECT_TRUE(eventually([&] { return unauthenticated_closes() == 2; }, scaled(milliseconds(3000))));
}

TEST_F(AuthTest, StreamFramesBeforeAnyRequestCloseTheConnection) {
  start_with_token(random_token());
  auto client = connect();
  // A STRM DATA frame for a stream nobody opened (brpc's layout: "STRM",
  // body and meta sizes, StreamFrameMeta{stream_id: 1000, frame_type: DATA}).
  const std::string meta = std::string("\x08\xe8\x07\x18\x02", 5);
  std::string frame = "STRM";
  const uint32_t body = static_cast<uint32_t>(meta.size() + 3), meta_size = static_cast<uint32_t>(meta.size());
  for (const uint32_t value : {body, meta_size}) {
    for (int shift = 24; shift >= 0; shift -= 8)
      frame.push_back(static_cast<char>((value >> shift) & 0xFF));
  }
  frame += meta + "abc";
  ASSERT_TRUE(client->send_bytes(frame + frame + frame));
  EXPECT_TRUE(client->wait_closed(kReceiveTimeout));
  EXPECT_EQ(server_->stats().authentication_failures, 1u);
}

TEST_F(AuthTest, AWrongCredentialOnALaterRequestIsRefusedToo) {
  const std::string token = random_token();
  start_with_token(token);
  auto client = connect();
  // The second carries none (served: verified once); the third a wrong one.
  ASSERT_TRUE(client->send_bytes(pipelined_echoes({token, "", random_token()})));
  expect_answers(*client, {0, 0, 1004});
  EXPECT_TRUE(client->wait_closed(kReceiveTimeout));
}

TEST_F(AuthTest, EveryCallModeVerifiesEachRequest) {
  const std::string token = random_token();
  start_with_token(token, /*every_call=*/true);
  auto each = channel(token_authenticator(token), /*every_call=*/true);
  for (const int code : echo_codes(*each, 10))
    EXPECT_EQ(code, 0);
  // A client that sends it once per connection: its hello passes, its call
  // (no credential) does not.
  auto once = channel(token_authenticator(token));
  std::vector<std::string> texts;
  const std::vector<int> codes = echo_codes(*once, 1, &texts);
  EXPECT_EQ(codes[0], 1004) << texts[0];
  EXPECT_NE(texts[0].find("credential_on_every_call"), std::string::npos) << texts[0];
}

TEST_F(AuthTest, HttpNeedsABearerTokenExceptOnHealth) {
  const std::string token = random_token();
  start_with_token(token);
  const int port = server_->port();
  const auto none = http_post(port, "/example.EchoService/Echo", "{}");
  ASSERT_TRUE(none);
  EXPECT_EQ(none->status, 401u);
  EXPECT_EQ(none->headers.at("www-authenticate"), "Bearer realm=\"percore\"");
  EXPECT_NE(none->body.find("\"code\":1004"), std::string::npos) << none->body;
  EXPECT_FALSE(none->keep_alive);

  const auto wrong = http_post(port, "/example.EchoService/Echo", "{}",
                               {{"Authorization", "Bearer " + random_token()}});
  ASSERT_TRUE(wrong);
  EXPECT_EQ(wrong->status, 401u);
  EXPECT_EQ(wrong->headers.at("www-authenticate"), "Bearer realm=\"percore\", error=\"invalid_token\"");

  const auto basic = http_post(port, "/example.EchoService/Echo", "{}",
                               {{"Authorization", "Basic " + token}});
  ASSERT_TRUE(basic);
  EXPECT_EQ(basic->status, 401u);

  const auto right = http_post(port, "/example.EchoService/Echo", "{\"message\":\"hi\"}",
                               {{"Authorization", "Bearer " + token}});
  ASSERT_TRUE(right);
  EXPECT_EQ(right->status, 200u) << right->body;

  // Two Authorization headers, one of them right: which counts would be
  // ambiguous, so neither does.
  const auto twice = http_post(port, "/example.EchoService/Echo", "{\"message\":\"hi\"}",
                               {{"Authorization", "Bearer " + token},
                                {"authorization", "Bearer " + random_token()}});
  ASSERT_TRUE(twice);
  EXPECT_EQ(twice->status, 401u) << twice->body;

  const auto health = http_get(port, "/health");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200u);
  for (const char* page : {"/status", "/metrics", "/ws/example.EchoService/Echo"}) {
    const auto answer = http_get(port, page);
    ASSERT_TRUE(answer) << page;
    EXPECT_EQ(answer->status, 401u) << page;
  }
  const auto status = http_get(port, "/status?format=json", {{"Authorization", "Bearer " + token}});
  ASSERT_TRUE(status);
  EXPECT_EQ(status->status, 200u);
  EXPECT_NE(status->body.find("\"authentication_failures\": 7"), std::string::npos) << status->body;
}

// A stranger's body is never read: the 401 comes once the header is in,
// and the connection closes (counted as unauthenticated).
TEST_F(AuthTest, HttpRefusesAfterTheHeaderWithoutReadingTheBody) {
  start_with_token(random_token());
  HttpClient client("127.0.0.1", server_->port(), scaled(milliseconds(5000)));
  ASSERT_TRUE(client.connected());
  ASSERT_TRUE(client.send_raw("POST /example.EchoService/Echo HTTP/1.1\r\nHost: x\r\n"
                              "Content-Type: application/json\r\nContent-Length: 50000000\r\n"
                              "Expect: 100-continue\r\n\r\n{\"message\":"));
  const auto answer = client.read_answer();
  ASSERT_TRUE(answer) << client.error();
  EXPECT_EQ(answer->status, 401u);
  EXPECT_TRUE(client.closed_by_peer());
  EXPECT_TRUE(eventually([&] { return unauthenticated_closes() == 1; }, scaled(milliseconds(3000))));
  // The absolute form, its scheme in capitals, reaches /health too.
  HttpClient health("127.0.0.1", server_->port(), scaled(milliseconds(5000)));
  ASSERT_TRUE(health.send_raw("GET HTTP://x/health HTTP/1.1\r\nHost: x\r\n\r\n"));
  const auto open = health.read_answer();
  ASSERT_TRUE(open) << health.error();
  EXPECT_EQ(open->status, 200u);
}

TEST_F(AuthTest, OpenBuiltinPagesServesStatusAndMetricsWithoutAToken) {
  start_with_token(random_token(), /*every_call=*/false, /*open_pages=*/true);
  for (const char* page : {"/status", "/metrics", "/health"}) {
    const auto answer = http_get(server_->port(), page);
    ASSERT_TRUE(answer) << page;
    EXPECT_EQ(answer->status, 200u) << page;
  }
  const auto call = http_post(server_->port(), "/example.EchoService/Echo", "{}");
  ASSERT_TRUE(call);
  EXPECT_EQ(call->status, 401u);
}

// --- TokenAuthenticator ---

class TokenFile {
 public:
  TokenFile(const std::string& contents, mode_t mode) {
    char path[] = "/tmp/percore-token-XXXXXX";
    const int fd = ::mkstemp(path);
    EXPECT_GE(fd, 0);
    ::close(fd);
    path_ = path;
    std::ofstream(path_) << contents;
    ::chmod(path_.c_str(), mode);
  }
  ~TokenFile() { std::remove(path_.c_str()); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

TEST(TokenAuthenticatorTest, ReadsTheFirstLineOfAPrivateFile) {
  const std::string token = random_token();
  TokenFile file(token + "\n", 0600);
  std::string error;
  auto authenticator = TokenAuthenticator::FromFile(file.path(), &error);
  ASSERT_NE(authenticator, nullptr) << error;
  std::string credential;
  EXPECT_EQ(authenticator->GenerateCredential(&credential), 0);
  EXPECT_EQ(credential, token);
  AuthContext context;
  std::string reason;
  EXPECT_EQ(authenticator->VerifyCredential(token, "127.0.0.1:1", &context, &reason), 0);
  EXPECT_EQ(context.user, "token");
  EXPECT_NE(authenticator->VerifyCredential(token + "x", "127.0.0.1:1", &context, &reason), 0);
  EXPECT_EQ(reason, "wrong token");
  EXPECT_NE(authenticator->VerifyCredential("", "127.0.0.1:1", &context, &reason), 0);
  EXPECT_EQ(reason, "no credential");
  EXPECT_NE(authenticator->VerifyCredential(token.substr(1), "127.0.0.1:1", &context, &reason), 0);
}

TEST(TokenAuthenticatorTest, RefusesAFileOthersCanReadWithoutQuotingIt) {
  const std::string token = random_token();
  TokenFile file(token + "\n", 0644);
  std::string error;
  EXPECT_EQ(TokenAuthenticator::FromFile(file.path(), &error), nullptr);
  EXPECT_NE(error.find("chmod 600"), std::string::npos) << error;
  EXPECT_EQ(error.find(token), std::string::npos) << error;
  EXPECT_EQ(TokenAuthenticator::FromFile("/nonexistent/token", &error), nullptr);
  EXPECT_NE(error.find("cannot be read"), std::string::npos) << error;
}

TEST(TokenAuthenticatorTest, RefusesTokensTooShortTooLongOrNotPrintable) {
  std::string error;
  EXPECT_EQ(TokenAuthenticator::FromToken("short", &error), nullptr);
  EXPECT_NE(error.find("at least 16"), std::string::npos) << error;
  EXPECT_EQ(TokenAuthenticator::FromToken(std::string(5000, 'a'), &error), nullptr);
  EXPECT_NE(error.find("at most 4096"), std::string::npos) << error;
  EXPECT_EQ(TokenAuthenticator::FromToken("0123456789abcdef ghij", &error), nullptr);
  EXPECT_NE(error.find("printable ASCII without spaces"), std::string::npos) << error;
  EXPECT_EQ(error.find("0123456789abcdef"), std::string::npos) << error;
  TokenFile empty("", 0600);
  EXPECT_EQ(TokenAuthenticator::FromFile(empty.path(), &error), nullptr);
  EXPECT_EQ(TokenAuthenticator::FromFile("/tmp", &error), nullptr);
  EXPECT_NE(error.find("not a regular file"), std::string::npos) << error;
  // A file of one endless line is not read whole.
  TokenFile endless(std::string(8 << 20, 'a'), 0600);
  EXPECT_EQ(TokenAuthenticator::FromFile(endless.path(), &error), nullptr);
  EXPECT_NE(error.find("at most 4096"), std::string::npos) << error;
}

TEST(TokenAuthenticatorTest, ReadsTheEnvironment) {
  const std::string token = random_token();
  ::setenv("PERCORE_TEST_AUTH_TOKEN", (token + "\n").c_str(), 1);
  std::string error;
  auto authenticator = TokenAuthenticator::FromEnvironment("PERCORE_TEST_AUTH_TOKEN", &error);
  ASSERT_NE(authenticator, nullptr) << error;
  std::string credential;
  authenticator->GenerateCredential(&credential);
  EXPECT_EQ(credential, token);
  ::unsetenv("PERCORE_TEST_AUTH_TOKEN");
  EXPECT_EQ(TokenAuthenticator::FromEnvironment("PERCORE_TEST_AUTH_TOKEN", &error), nullptr);
  EXPECT_NE(error.find("not set"), std::string::npos) << error;
}

}  // namespace
}  // namespace percore::testing
