#include <percore/discovery/file_naming_source.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string_view>

#include <percore/base/log.h>

namespace percore {
namespace {

std::string_view trim(std::string_view text) {
  constexpr std::string_view kSpace = " \t\r\f\v";
  const size_t begin = text.find_first_not_of(kSpace);
  if (begin == std::string_view::npos)
    return {};
  return text.substr(begin, text.find_last_not_of(kSpace) - begin + 1);
}

// Closes a descriptor on every return path.
class FdCloser {
 public:
  explicit FdCloser(int fd) : fd_(fd) {}
  ~FdCloser() { ::close(fd_); }
  FdCloser(const FdCloser&) = delete;
  FdCloser& operator=(const FdCloser&) = delete;

 private:
  int fd_;
};

}  // namespace

bool FileNamingSource::FileStamp::operator==(const FileStamp& other) const {
  return device == other.device && inode == other.inode && size == other.size &&
         mtime.tv_sec == other.mtime.tv_sec && mtime.tv_nsec == other.mtime.tv_nsec;
}

FileNamingSource::FileNamingSource(std::string path, std::chrono::milliseconds poll_interval)
    : path_(std::move(path)), poll_interval_(poll_interval) {}

FileNamingSource::~FileNamingSource() {
  stop();
}

bool FileNamingSource::stat_file(FileStamp* stamp, std::string* error) const {
  struct stat info {};
  if (::stat(path_.c_str(), &info) != 0) {
    *error = "cannot read servers file '" + path_ + "': " + std::strerror(errno);
    return false;
  }
  *stamp = FileStamp{info.st_dev, info.st_ino, info.st_size, info.st_mtim};
  return true;
}

bool FileNamingSource::read_servers(FileStamp* stamp, std::vector<ServerAddress>* servers,
                                    std::string* error) const {
  const std::string cannot_read = "cannot read servers file '" + path_ + "': ";
  // O_NONBLOCK: a FIFO put in the file's place must not hang the open.
  const int fd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    *error = cannot_read + std::strerror(errno);
    return false;
  }
  FdCloser closer(fd);
  struct stat info {};
  if (::fstat(fd, &info) != 0) {
    *error = cannot_read + std::strerror(errno);
    return false;
  }
  if (!S_ISREG(info.st_mode)) {
    *error = cannot_read + "not a regular file";
    return false;
  }
  // The stamp of what is actually read, not of what the path named earlier.
  *stamp = FileStamp{info.st_dev, info.st_ino, info.st_size, info.st_mtim};

  std::string text;
  char buffer[4096];
  for (;;) {
    const ssize_t got = ::read(fd, buffer, sizeof(buffer));
    if (got < 0 && errno == EINTR)
      continue;
    if (got < 0) {
      *error = cannot_read + std::strerror(errno);
      return false;
    }
    if (got == 0)
      break;
    text.append(buffer, static_cast<size_t>(got));
  }

  servers->clear();
  std::string_view rest = text;
  for (int line_number = 1; !rest.empty(); ++line_number) {
    const size_t newline = rest.find('\n');
    const std::string_view line = trim(rest.substr(0, newline));
    rest = newline == std::string_view::npos ? std::string_view() : rest.substr(newline + 1);
    if (line.empty() || line.front() == '#')
      continue;
    std::string address_error;
    std::optional<ServerAddress> address = resolve_server_address(line, &address_error);
    if (!address) {
      *error =
          "servers file '" + path_ + "' line " + std::to_string(line_number) + ": " + address_error;
      return false;
    }
    servers->push_back(std::move(*address));
  }
  if (servers->empty()) {
    *error = "servers file '" + path_ + "' names no server";
    return false;
  }
  std::sort(servers->begin(), servers->end());
  servers->erase(std::unique(servers->begin(), servers->end()), servers->end());
  return true;
}

bool FileNamingSource::start(Listener listener, std::string* error) {
  std::string reason;
  auto fail = [&](const std::string& text) {
    if (error != nullptr)
      *error = text;
    return false;
  };
  if (started_)
    return fail("file naming source for '" + path_ + "' already started");
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stopping_)
      return fail("file naming source for '" + path_ + "' was stopped");
  }
  if (path_.empty())
    return fail("file:// names no path");

  FileStamp stamp;
  std::vector<ServerAddress> servers;
  if (!read_servers(&stamp, &servers, &reason))
    return fail(reason);
  // If the file changed while it was read, the first poll sees a new stamp
  // and reads it again.
  listener(servers);
  listener_ = std::move(listener);
  last_servers_ = std::move(servers);
  last_stamp_ = stamp;
  started_ = true;
  thread_ = std::thread([this] { poll_loop(); });
  return true;
}

void FileNamingSource::stop() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable())
    thread_.join();
}

void FileNamingSource::poll_loop() {
  // Logs each new problem once, not once per poll.
  auto report = [this](const std::string& problem) {
    if (problem == last_problem_)
      return;
    last_problem_ = problem;
    log(LogLevel::kWarning, problem + "; keeping the last list of " +
                                std::to_string(last_servers_.size()) + " server(s)");
  };

  std::unique_lock<std::mutex> lock(mutex_);
  for (;;) {
    if (wake_.wait_for(lock, poll_interval_, [this] { return stopping_; }))
      return;
    lock.unlock();

    std::string problem;
    FileStamp stamp;
    std::vector<ServerAddress> servers;
    if (!stat_file(&stamp, &problem)) {
      report(problem);
      last_stamp_ = FileStamp{};  // whatever appears next is new
    } else if (!(stamp == last_stamp_)) {
      FileStamp read_stamp;
      const bool read = read_servers(&read_stamp, &servers, &problem);
      const bool opened = read_stamp.size >= 0;
      FileStamp after;
      std::string ignored;
      if (opened && (!stat_file(&after, &ignored) || !(after == read_stamp))) {
        // Written to while being read: what was read may be half a file.
        // Leave last_stamp_ alone so that the next poll reads it again.
      } else if (!read) {
        report(problem);
        // A bad file is read again when it changes; one that could not be
        // opened, at every poll (a chmod does not change the stamp).
        last_stamp_ = read_stamp;
      } else {
        last_stamp_ = read_stamp;
        last_problem_.clear();
        if (servers != last_servers_) {
          listener_(servers);
          last_servers_ = std::move(servers);
        }
      }
    }

    lock.lock();
  }
}

}  // namespace percore
