#include <percore/discovery/file_naming_source.h>

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <percore/discovery/naming_source.h>
#include "test/support/slack.h"

namespace percore {
namespace {

using namespace std::chrono_literals;
using percore::testing::scaled;

constexpr std::chrono::milliseconds kPoll = 50ms;
// Long enough for several polls: a delivery that was going to come has come.
constexpr std::chrono::milliseconds kQuiet = 300ms;

// A fresh directory under TMPDIR, removed with its contents.
class TempDir {
 public:
  TempDir() {
    const char* base = std::getenv("TMPDIR");
    std::string pattern = std::string(base != nullptr ? base : "/tmp") + "/percore-file-XXXXXX";
    if (::mkdtemp(pattern.data()) != nullptr)
      path_ = pattern;
  }
  ~TempDir() {
    if (!path_.empty()) {
      std::error_code ignored;
      std::filesystem::remove_all(path_, ignored);
    }
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

void write_in_place(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::trunc);
  out << text;
}

// Writes a new file and renames it over `path`, as the header recommends.
void write_atomically(const std::string& path, const std::string& text) {
  write_in_place(path + ".new", text);
  ASSERT_EQ(std::rename((path + ".new").c_str(), path.c_str()), 0);
}

// Collects the lists a source delivers, from whichever thread.
class Deliveries {
 public:
  NamingSource::Listener listener() {
    return [this](const std::vector<ServerAddress>& servers) {
      std::lock_guard<std::mutex> lock(mutex_);
      lists_.push_back(servers);
      changed_.notify_all();
    };
  }
  // Bounded: waits until `count` lists have come, at most `timeout` (scaled).
  bool wait_for(size_t count, std::chrono::milliseconds timeout = 2000ms) {
    std::unique_lock<std::mutex> lock(mutex_);
    return changed_.wait_for(lock, scaled(timeout), [&] { return lists_.size() >= count; });
  }
  size_t count() {
    std::lock_guard<std::mutex> lock(mutex_);
    return lists_.size();
  }
  std::vector<ServerAddress> at(size_t index) {
    std::lock_guard<std::mutex> lock(mutex_);
    return index < lists_.size() ? lists_[index] : std::vector<ServerAddress>{};
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<std::vector<ServerAddress>> lists_;
};

class FileNamingSourceTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_FALSE(dir_.path().empty()) << "mkdtemp failed"; }

  std::string file() const { return dir_.path() + "/servers.txt"; }

  TempDir dir_;
  Deliveries deliveries_;
};

using Servers = std::vector<ServerAddress>;

TEST_F(FileNamingSourceTest, DeliversTheFirstListBeforeStartReturns) {
  write_in_place(file(),
                 "# percore servers\n"
                 "\n"
                 "127.0.0.1:8002\n"
                 "  127.0.0.1:8000  \n"
                 "\t# indented comment\n"
                 "127.0.0.2:1\r\n"
                 "[::1]:9000\n"
                 "127.0.0.1:8002\n"  // listed twice: one server
                 "127.0.0.1:8001");  // no final newline
  FileNamingSource source(file(), kPoll);
  std::string error;
  ASSERT_TRUE(source.start(deliveries_.listener(), &error)) << error;
  // Checked right away: the first list came during start().
  ASSERT_EQ(deliveries_.count(), 1u);
  EXPECT_EQ(deliveries_.at(0), (Servers{{"127.0.0.1", 8000},
                                        {"127.0.0.1", 8001},
                                        {"127.0.0.1", 8002},
                                        {"127.0.0.2", 1},
                                        {"::1", 9000}}));
  source.stop();
}

TEST_F(FileNamingSourceTest, SeesServersAddedAndRemoved) {
  write_in_place(file(), "127.0.0.1:8000\n127.0.0.1:8001\n");
  FileNamingSource source(file(), kPoll);
  std::string error;
  ASSERT_TRUE(source.start(deliveries_.listener(), &error)) << error;
  ASSERT_EQ(deliveries_.count(), 1u);

  // Edited in place: a server added (the size changes).
  write_in_place(file(), "127.0.0.1:8000\n127.0.0.1:8001\n127.0.0.1:8002\n");
  ASSERT_TRUE(deliveries_.wait_for(2)) << "the added server was not seen";
  EXPECT_EQ(deliveries_.at(1),
            (Servers{{"127.0.0.1", 8000}, {"127.0.0.1", 8001}, {"127.0.0.1", 8002}}));

  // Replaced by rename: one removed.
  write_atomically(file(), "127.0.0.1:8002\n127.0.0.1:8000\n");
  ASSERT_TRUE(deliveries_.wait_for(3)) << "the removed server was not seen";
  EXPECT_EQ(deliveries_.at(2), (Servers{{"127.0.0.1", 8000}, {"127.0.0.1", 8002}}));

  // Replaced by rename with the same size: the new inode tells.
  write_atomically(file(), "127.0.0.1:8003\n127.0.0.1:8000\n");
  ASSERT_TRUE(deliveries_.wait_for(4)) << "the replaced server was not seen";
  EXPECT_EQ(deliveries_.at(3), (Servers{{"127.0.0.1", 8000}, {"127.0.0.1", 8003}}));
  source.stop();
  EXPECT_EQ(deliveries_.count(), 4u);
}

TEST_F(FileNamingSourceTest, RewriteWithTheSameServersDeliversNothing) {
  write_in_place(file(), "127.0.0.1:8000\n127.0.0.1:8001\n");
  FileNamingSource source(file(), kPoll);
  std::string error;
  ASSERT_TRUE(source.start(deliveries_.listener(), &error)) << error;

  // Same content, then the same servers spelled differently: the file
  // changes, the list does not.
  write_atomically(file(), "127.0.0.1:8000\n127.0.0.1:8001\n");
  std::this_thread::sleep_for(kQuiet);
  write_in_place(file(), "# reordered\n127.0.0.1:8001\n\n127.0.0.1:8000\n");
  std::this_thread::sleep_for(kQuiet);
  EXPECT_EQ(deliveries_.count(), 1u);

  // A real change after them is the next delivery.
  write_atomically(file(), "127.0.0.1:8001\n");
  ASSERT_TRUE(deliveries_.wait_for(2));
  EXPECT_EQ(deliveries_.at(1), (Servers{{"127.0.0.1", 8001}}));
  std::this_thread::sleep_for(kQuiet);
  EXPECT_EQ(deliveries_.count(), 2u);
  source.stop();
}

TEST_F(FileNamingSourceTest, MissingFileFailsStart) {
  FileNamingSource source(file(), kPoll);
  std::string error;
  EXPECT_FALSE(source.start(deliveries_.listener(), &error));
  EXPECT_NE(error.find(file()), std::string::npos) << error;
  EXPECT_NE(error.find("No such file"), std::string::npos) << error;
  EXPECT_EQ(deliveries_.count(), 0u);
  source.stop();
}

TEST_F(FileNamingSourceTest, DirectoryFailsStart) {
  FileNamingSource source(dir_.path(), kPoll);
  std::string error;
  EXPECT_FALSE(source.start(deliveries_.listener(), &error));
  EXPECT_NE(error.find("not a regular file"), std::string::npos) << error;
  EXPECT_EQ(deliveries_.count(), 0u);
}

TEST_F(FileNamingSourceTest, UnreadableFileFailsStart) {
  if (::geteuid() == 0)
    GTEST_SKIP() << "root reads any file";
  write_in_place(file(), "127.0.0.1:8000\n");
  ASSERT_EQ(::chmod(file().c_str(), 0), 0);
  FileNamingSource source(file(), kPoll);
  std::string error;
  EXPECT_FALSE(source.start(deliveries_.listener(), &error));
  EXPECT_NE(error.find("Permission denied"), std::string::npos) << error;
  EXPECT_EQ(deliveries_.count(), 0u);
}

TEST_F(FileNamingSourceTest, BadLineFailsStartNamingTheLine) {
  write_in_place(file(), "127.0.0.1:8000\n# comment\n127.0.0.1:0\n127.0.0.1:8001\n");
  FileNamingSource source(file(), kPoll);
  std::string error;
  EXPECT_FALSE(source.start(deliveries_.listener(), &error));
  EXPECT_NE(error.find("line 3"), std::string::npos) << error;
  EXPECT_NE(error.find("'127.0.0.1:0'"), std::string::npos) << error;
  EXPECT_NE(error.find(file()), std::string::npos) << error;
  EXPECT_EQ(deliveries_.count(), 0u);
}

TEST_F(FileNamingSourceTest, FileWithNoServerFailsStart) {
  write_in_place(file(), "# nothing yet\n\n");
  FileNamingSource source(file(), kPoll);
  std::string error;
  EXPECT_FALSE(source.start(deliveries_.listener(), &error));
  EXPECT_NE(error.find("names no server"), std::string::npos) << error;
  EXPECT_EQ(deliveries_.count(), 0u);
}

TEST_F(FileNamingSourceTest, BrokenOrMissingFileKeepsTheLastList) {
  write_in_place(file(), "127.0.0.1:8000\n");
  FileNamingSource source(file(), kPoll);
  std::string error;
  ASSERT_TRUE(source.start(deliveries_.listener(), &error)) << error;

  write_atomically(file(), "127.0.0.1:8000\nnot-an-address\n");  // a bad line
  std::this_thread::sleep_for(kQuiet);
  write_atomically(file(), "# emptied\n");  // no server
  std::this_thread::sleep_for(kQuiet);
  ASSERT_EQ(std::remove(file().c_str()), 0);  // gone
  std::this_thread::sleep_for(kQuiet);
  EXPECT_EQ(deliveries_.count(), 1u);

  // Back, with a different list: delivered.
  write_atomically(file(), "127.0.0.1:8000\n127.0.0.1:8001\n");
  ASSERT_TRUE(deliveries_.wait_for(2));
  EXPECT_EQ(deliveries_.at(1), (Servers{{"127.0.0.1", 8000}, {"127.0.0.1", 8001}}));
  source.stop();
}

TEST_F(FileNamingSourceTest, FileBackWithTheSameListDeliversNothing) {
  write_in_place(file(), "127.0.0.1:8000\n");
  FileNamingSource source(file(), kPoll);
  std::string error;
  ASSERT_TRUE(source.start(deliveries_.listener(), &error)) << error;
  ASSERT_EQ(std::remove(file().c_str()), 0);
  std::this_thread::sleep_for(kQuiet);
  write_in_place(file(), "127.0.0.1:8000\n");
  std::this_thread::sleep_for(kQuiet);
  EXPECT_EQ(deliveries_.count(), 1u);
  source.stop();
}

TEST_F(FileNamingSourceTest, NoDeliveryAfterStop) {
  write_in_place(file(), "127.0.0.1:8000\n");
  FileNamingSource source(file(), kPoll);
  std::string error;
  ASSERT_TRUE(source.start(deliveries_.listener(), &error)) << error;
  source.stop();
  write_atomically(file(), "127.0.0.1:8001\n");
  write_in_place(file(), "127.0.0.1:8002\n127.0.0.1:8003\n");
  std::this_thread::sleep_for(kQuiet);
  EXPECT_EQ(deliveries_.count(), 1u);
  source.stop();  // Idempotent.
}

TEST_F(FileNamingSourceTest, StopReturnsPromptlyWithALongPollInterval) {
  write_in_place(file(), "127.0.0.1:8000\n");
  FileNamingSource source(file(), std::chrono::milliseconds(60'000));
  std::string error;
  ASSERT_TRUE(source.start(deliveries_.listener(), &error)) << error;
  const auto begin = std::chrono::steady_clock::now();
  source.stop();
  EXPECT_LT(std::chrono::steady_clock::now() - begin, scaled(1000ms));
}

TEST_F(FileNamingSourceTest, DestructorStops) {
  write_in_place(file(), "127.0.0.1:8000\n");
  {
    FileNamingSource source(file(), kPoll);
    std::string error;
    ASSERT_TRUE(source.start(deliveries_.listener(), &error)) << error;
  }
  write_atomically(file(), "127.0.0.1:8001\n");
  std::this_thread::sleep_for(kQuiet);
  EXPECT_EQ(deliveries_.count(), 1u);
}

TEST_F(FileNamingSourceTest, StartsOnlyOnce) {
  write_in_place(file(), "127.0.0.1:8000\n");
  FileNamingSource source(file(), kPoll);
  std::string error;
  ASSERT_TRUE(source.start(deliveries_.listener(), &error)) << error;
  EXPECT_FALSE(source.start(deliveries_.listener(), &error));
  EXPECT_NE(error.find("already started"), std::string::npos) << error;
  source.stop();
  FileNamingSource stopped(file(), kPoll);
  stopped.stop();
  EXPECT_FALSE(stopped.start(deliveries_.listener(), nullptr));
  EXPECT_EQ(deliveries_.count(), 1u);
}

TEST_F(FileNamingSourceTest, FileSchemeMakesAFileSource) {
  write_in_place(file(), "127.0.0.1:8001\n127.0.0.1:8000\n");
  std::string error;
  const std::unique_ptr<NamingSource> source = make_naming_source("file://" + file(), &error);
  ASSERT_NE(source, nullptr) << error;
  EXPECT_NE(dynamic_cast<FileNamingSource*>(source.get()), nullptr);
  ASSERT_TRUE(source->start(deliveries_.listener(), &error)) << error;
  ASSERT_EQ(deliveries_.count(), 1u);
  EXPECT_EQ(deliveries_.at(0), (Servers{{"127.0.0.1", 8000}, {"127.0.0.1", 8001}}));
  source->stop();
}

TEST_F(FileNamingSourceTest, UnknownSchemeListsFile) {
  std::string error;
  EXPECT_EQ(make_naming_source("ftp://x", &error), nullptr);
  EXPECT_NE(error.find("file://"), std::string::npos) << error;
}

}  // namespace
}  // namespace percore
