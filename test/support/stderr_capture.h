#pragma once

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

namespace percore::testing {

// Sends this process's stderr (descriptor 2: protobuf's and percore's log)
// to a temporary file until stop(), which returns what was written.
// Threads: one; while it is active, every thread's stderr goes to the file.
class StderrCapture {
 public:
  StderrCapture() {
    char path[] = "/tmp/percore-stderr-XXXXXX";
    const int fd = ::mkstemp(path);
    path_ = path;
    std::fflush(stderr);
    saved_ = ::dup(STDERR_FILENO);
    ::dup2(fd, STDERR_FILENO);
    ::close(fd);
  }
  ~StderrCapture() { stop(); }
  StderrCapture(const StderrCapture&) = delete;
  StderrCapture& operator=(const StderrCapture&) = delete;

  std::string stop() {
    if (saved_ < 0)
      return text_;
    std::fflush(stderr);
    ::dup2(saved_, STDERR_FILENO);
    ::close(saved_);
    saved_ = -1;
    std::ifstream in(path_);
    std::ostringstream text;
    text << in.rdbuf();
    text_ = text.str();
    std::remove(path_.c_str());
    return text_;
  }

 private:
  std::string path_;
  int saved_ = -1;
  std::string text_;
};

}  // namespace percore::testing
