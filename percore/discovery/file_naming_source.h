#pragma once

#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <ctime>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <percore/discovery/naming_source.h>

namespace percore {

// `file:///path/servers.txt`: one `host:port` a line (blank lines and lines
// starting with '#' ignored, surrounding spaces trimmed), re-read when the
// file changes.
//
// start() reads the file and delivers the first list before it returns; a
// missing or unreadable file, a bad line (the error names it) or a file with
// no server fails start(). Then the source's own thread polls the file's
// identity (device, inode, size, mtime) every poll interval, re-reads it when
// that changes, and delivers the full list when it differs from the last one
// delivered. A file that turns missing, unreadable, bad or empty keeps the
// last list (one line on stderr for each new problem) until it is fixed;
// an empty file is taken as a writer caught mid-way rather than "no
// servers". To change the file, write a new one and rename() it over the old:
// a reader never sees it half-written, and the new inode is always noticed
// (an in-place edit that keeps the size within one timestamp tick is not).
//
// Owns: the polling thread. Threads: as NamingSource; the listener runs on
// the caller of start() for the first list, then on the polling thread. The
// listener must not call stop(). Host names are resolved on the polling
// thread, so a slow resolver can delay stop() by one lookup.
class FileNamingSource : public NamingSource {
 public:
  static constexpr std::chrono::milliseconds kDefaultPollInterval{200};

  // `path` is the part after "file://" (so "/path/servers.txt").
  explicit FileNamingSource(std::string path,
                            std::chrono::milliseconds poll_interval = kDefaultPollInterval);
  ~FileNamingSource() override;
  FileNamingSource(const FileNamingSource&) = delete;
  FileNamingSource& operator=(const FileNamingSource&) = delete;

  // Once per source: a second call, or one after stop(), fails.
  bool start(Listener listener, std::string* error) override;
  // Wakes and joins the polling thread. Idempotent.
  void stop() override;

 private:
  // What tells one version of the file from the next without reading it.
  struct FileStamp {
    dev_t device = 0;
    ino_t inode = 0;
    off_t size = -1;
    timespec mtime{};
    bool operator==(const FileStamp& other) const;
  };

  // Stats, reads and resolves the file into a sorted, duplicate-free list.
  // False with *error (naming the file and, for a bad line, its number).
  bool read_servers(FileStamp* stamp, std::vector<ServerAddress>* servers,
                    std::string* error) const;
  bool stat_file(FileStamp* stamp, std::string* error) const;
  void poll_loop();

  const std::string path_;
  const std::chrono::milliseconds poll_interval_;
  // Set by start() before the thread exists; then the thread's alone.
  Listener listener_;
  std::vector<ServerAddress> last_servers_;
  FileStamp last_stamp_;
  std::string last_problem_;  // the last error logged, to log each once

  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;  // guarded by mutex_
  bool started_ = false;   // control thread only
  std::thread thread_;
};

}  // namespace percore
