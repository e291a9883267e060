#pragma once

// The C client's synchronous API exists only with THREADED defined.
#define THREADED
#include <zookeeper/zookeeper.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "test/support/slack.h"

namespace percore::testing {

// A plain ZooKeeper C handle, as another process (Curator, an operator)
// would hold: no credential, synchronous calls. For tests: it reads and
// writes nodes behind percore's back (Curator's updateService rewrites an
// instance's data in place).
//
// Owns: the handle. Threads: any, one call at a time.
class RawZooKeeper {
 public:
  // Waits (10 s, scaled) for the session; `session` resumes an existing one
  // (which takes it over from its owner).
  explicit RawZooKeeper(const std::string& hosts, const clientid_t* session = nullptr) {
    handle_ = zookeeper_init(hosts.c_str(), &RawZooKeeper::watcher, 4000, session, this, 0);
    std::unique_lock lock(mutex_);
    changed_.wait_for(lock, scaled(std::chrono::milliseconds(10000)), [&] { return connected_; });
  }
  ~RawZooKeeper() {
    if (handle_ != nullptr)
      zookeeper_close(handle_);
  }
  RawZooKeeper(const RawZooKeeper&) = delete;
  RawZooKeeper& operator=(const RawZooKeeper&) = delete;

  bool connected() {
    std::lock_guard lock(mutex_);
    return connected_;
  }
  zhandle_t* handle() { return handle_; }

  // Children names of `path`; empty if it does not exist.
  std::vector<std::string> children(const std::string& path) {
    String_vector names{0, nullptr};
    std::vector<std::string> result;
    if (zoo_get_children(handle_, path.c_str(), 0, &names) == ZOK) {
      for (int i = 0; i < names.count; ++i)
        result.push_back(names.data[i]);
      deallocate_String_vector(&names);
    }
    return result;
  }
  std::optional<std::string> data(const std::string& path, Stat* stat = nullptr) {
    std::vector<char> buffer(1 << 16);
    int length = static_cast<int>(buffer.size());
    Stat local;
    if (zoo_get(handle_, path.c_str(), 0, buffer.data(), &length, stat ? stat : &local) != ZOK) {
      return std::nullopt;
    }
    return std::string(buffer.data(), length < 0 ? 0 : length);
  }
  // ZooKeeper's return code (ZOK = 0).
  int set(const std::string& path, const std::string& data) {
    return zoo_set(handle_, path.c_str(), data.data(), static_cast<int>(data.size()), -1);
  }
  int remove(const std::string& path) { return zoo_delete(handle_, path.c_str(), -1); }
  // `path` and its missing parents, PERSISTENT and empty, as Curator creates
  // a service's node; true when it exists afterwards.
  bool create_path(const std::string& path) {
    for (size_t slash = path.find('/', 1);; slash = path.find('/', slash + 1)) {
      const std::string prefix = path.substr(0, slash);
      const int rc = zoo_create(handle_, prefix.c_str(), nullptr, -1, &ZOO_OPEN_ACL_UNSAFE, 0,
                                nullptr, 0);
      if (rc != ZOK && rc != ZNODEEXISTS)
        return false;
      if (slash == std::string::npos)
        return true;
    }
  }
  // An EPHEMERAL node of this session.
  int create_ephemeral(const std::string& path, const std::string& data) {
    return zoo_create(handle_, path.c_str(), data.data(), static_cast<int>(data.size()),
                      &ZOO_OPEN_ACL_UNSAFE, ZOO_EPHEMERAL, nullptr, 0);
  }

 private:
  static void watcher(zhandle_t*, int type, int state, const char*, void* context) {
    auto* self = static_cast<RawZooKeeper*>(context);
    if (type != ZOO_SESSION_EVENT)
      return;
    std::lock_guard lock(self->mutex_);
    self->connected_ = state == ZOO_CONNECTED_STATE;
    self->changed_.notify_all();
  }

  zhandle_t* handle_ = nullptr;
  std::mutex mutex_;
  std::condition_variable changed_;
  bool connected_ = false;
};

}  // namespace percore::testing
