#include <percore/base/log.h>

#include <gtest/gtest.h>
#include <spdlog/logger.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace percore {
namespace {

// percore's lines, captured by registering the "percore" logger before
// percore writes its first line (as an application redirecting them would).
class LogTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    sink_ = std::make_shared<spdlog::sinks::ostream_sink_mt>(lines_);
    sink_->set_pattern("%l %v");
    spdlog::register_logger(std::make_shared<spdlog::logger>("percore", sink_));
  }
  void SetUp() override { lines_.str(""); }

  static std::vector<std::string> captured() {
    std::vector<std::string> lines;
    std::istringstream in(lines_.str());
    for (std::string line; std::getline(in, line);)
      lines.push_back(line);
    return lines;
  }

  static inline std::ostringstream lines_;
  static inline std::shared_ptr<spdlog::sinks::ostream_sink_mt> sink_;
};

TEST_F(LogTest, LinesGoToTheLoggerNamedPercore) {
  log(LogLevel::kWarning, "something to say");
  const auto lines = captured();
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0], "warning something to say");
}

TEST_F(LogTest, RateLimiterLetsABurstThroughThenCountsWhatItHoldsBack) {
  LogRateLimiter limiter(3, std::chrono::milliseconds(300));
  int texts_made = 0;
  for (int i = 0; i < 50; ++i) {
    limiter.log(LogLevel::kError, [&] {
      ++texts_made;
      return "bad input " + std::to_string(i);
    });
  }
  EXPECT_EQ(texts_made, 3);  // Held-back lines are not even formatted.
  EXPECT_EQ(captured().size(), 3u);
  EXPECT_EQ(limiter.suppressed_total(), 47u);

  std::this_thread::sleep_for(std::chrono::milliseconds(350));
  limiter.log(LogLevel::kError, [] { return std::string("after the window"); });
  const auto lines = captured();
  ASSERT_EQ(lines.size(), 4u);
  EXPECT_EQ(lines[3], "error after the window (47 similar lines suppressed)");
}

TEST_F(LogTest, RateLimiterIsSafeFromManyThreads) {
  LogRateLimiter limiter(5, std::chrono::seconds(10));
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 1000; ++i)
        limiter.log(LogLevel::kWarning, [] { return std::string("flood"); });
    });
  }
  for (auto& thread : threads)
    thread.join();
  EXPECT_EQ(captured().size(), 5u);
  EXPECT_EQ(limiter.suppressed_total(), 3995u);
}

}  // namespace
}  // namespace percore
