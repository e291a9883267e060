#include "discovery/zookeeper_client.h"

// The C client's synchronous API exists only with THREADED defined.
#define THREADED
#include <zookeeper/zookeeper.h>

#include <future>

#include "base/log.h"
#include "proto/assert.h"

namespace percore {
namespace {

constexpr auto kRetryInterval = std::chrono::milliseconds(500);
constexpr int kMaxNodeBytes = 1 << 20;  // ZooKeeper's own limit on node data.

std::string zk_error(int code) {
  return zerror(code);
}

// Creator-all (for holders of the credential) + world-read.
ACL_vector* protected_acl() {
  static ACL entries[2] = {{ZOO_PERM_ALL, ZOO_AUTH_IDS}, {ZOO_PERM_READ, ZOO_ANYONE_ID_UNSAFE}};
  static ACL_vector vector = {2, entries};
  return &vector;
}

}  // namespace

ZooKeeperClient::ZooKeeperClient(ZooKeeperOptions options) : options_(std::move(options)) {
  static std::once_flag quiet;
  std::call_once(quiet, [] { zoo_set_debug_level(ZOO_LOG_LEVEL_ERROR); });
}

ZooKeeperClient::~ZooKeeperClient() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  changed_.notify_all();
  if (session_thread_.joinable())
    session_thread_.join();
}

bool ZooKeeperClient::connect(std::string* error) {
  session_thread_ = std::thread([this] { run_session_thread(); });
  session_thread_id_.store(session_thread_.get_id());
  bool ok = false;
  std::string reason;
  run_on_session_thread(
      [&] { ok = open_session(std::chrono::milliseconds(options_.connect_timeout_ms), &reason); });
  if (!ok && error != nullptr)
    *error = reason;
  return ok;
}

void ZooKeeperClient::on_watcher_event(zhandle_t*, int type, int state, const char* path,
                                       void* context) {
  auto* handle_context = static_cast<HandleContext*>(context);
  ZooKeeperClient& self = *handle_context->client;
  std::unique_lock lock(self.mutex_);
  if (handle_context->generation != self.generation_ || self.stopping_)
    return;
  if (type == ZOO_SESSION_EVENT) {
    if (state == ZOO_CONNECTED_STATE) {
      self.connected_ = true;
      self.events_.push_back(Event{Event::Kind::kConnected, {}, {}});
    } else if (state == ZOO_EXPIRED_SESSION_STATE) {
      self.connected_ = false;
      self.events_.push_back(Event{Event::Kind::kSessionExpired, {}, {}});
    } else if (state == ZOO_AUTH_FAILED_STATE) {
      self.auth_failed_ = true;
    } else {
      self.connected_ = false;  // Connecting again: the C client handles it.
    }
  } else if (path != nullptr) {
    // Children changed, the watched node appeared or went, or the server
    // dropped the watch: read it again (which re-arms it).
    self.events_.push_back(Event{Event::Kind::kWatchFired, path, {}});
  }
  lock.unlock();
  self.changed_.notify_all();
}

void ZooKeeperClient::queue(Event event) {
  {
    std::lock_guard lock(mutex_);
    events_.push_back(std::move(event));
  }
  changed_.notify_all();
}

void ZooKeeperClient::run_on_session_thread(std::function<void()> task) {
  PERCORE_ASSERT(std::this_thread::get_id() != session_thread_id_.load());
  std::promise<void> finished;
  queue(Event{Event::Kind::kTask, {}, [&] {
                task();
                finished.set_value();
              }});
  finished.get_future().wait();
}

void ZooKeeperClient::run_session_thread() {
  for (;;) {
    Event event;
    {
      std::unique_lock lock(mutex_);
      changed_.wait_until(lock, retry_at_, [&] { return stopping_ || !events_.empty(); });
      if (stopping_)
        break;
      if (events_.empty()) {
        lock.unlock();
        refresh_unarmed_watches();  // The retry time came.
        continue;
      }
      event = std::move(events_.front());
      events_.pop_front();
    }
    switch (event.kind) {
      case Event::Kind::kTask:
        event.task();
        break;
      case Event::Kind::kConnected:
        refresh_unarmed_watches();
        break;
      case Event::Kind::kSessionExpired:
        replace_expired_session();
        break;
      case Event::Kind::kWatchFired: {
        const auto found = watches_.find(event.path);
        if (found != watches_.end())
          refresh_watch(found->first, found->second);
        break;
      }
    }
  }
  // Pending tasks still get an answer (they fail on a closed session).
  close_session();
  std::deque<Event> left;
  {
    std::lock_guard lock(mutex_);
    left.swap(events_);
  }
  for (Event& event : left) {
    if (event.kind == Event::Kind::kTask)
      event.task();
  }
}

bool ZooKeeperClient::open_session(std::chrono::milliseconds timeout, std::string* error) {
  uint64_t generation;
  {
    std::lock_guard lock(mutex_);
    generation = ++generation_;
    connected_ = false;
    auth_failed_ = false;
  }
  contexts_.push_back(std::make_unique<HandleContext>(HandleContext{this, generation}));
  handle_ = zookeeper_init(options_.hosts.c_str(), &ZooKeeperClient::on_watcher_event,
                           options_.session_timeout_ms, nullptr, contexts_.back().get(), 0);
  if (handle_ == nullptr) {
    if (error != nullptr)
      *error = "bad ZooKeeper hosts '" + options_.hosts + "'";
    return false;
  }
  {
    std::unique_lock lock(mutex_);
    const bool up = changed_.wait_for(lock, timeout, [&] { return connected_ || stopping_; });
    if (!up || stopping_) {
      lock.unlock();
      close_session();
      if (error != nullptr) {
        *error = "ZooKeeper unreachable at " + options_.hosts + ": no session within " +
                 std::to_string(timeout.count()) + " ms";
      }
      return false;
    }
  }
  if (!authenticate(error)) {
    close_session();
    return false;
  }
  const clientid_t* id = zoo_client_id(handle_);
  SessionListener listener;
  {
    std::lock_guard lock(mutex_);
    session_id_ = id->client_id;
    session_password_.assign(id->passwd, sizeof(id->passwd));
    listener = session_listener_;
  }
  if (listener)
    listener(id->client_id, std::string(id->passwd, sizeof(id->passwd)));
  return true;
}

void ZooKeeperClient::close_session() {
  if (handle_ == nullptr)
    return;
  {
    std::lock_guard lock(mutex_);
    ++generation_;  // Late events of this handle are dropped.
    connected_ = false;
  }
  zookeeper_close(handle_);  // Joins the C client's threads.
  handle_ = nullptr;
  contexts_.clear();
}

bool ZooKeeperClient::authenticate(std::string* error) {
  if (options_.digest_credential.empty())
    return true;
  std::promise<int> result;
  const int code = zoo_add_auth(
      handle_, "digest", options_.digest_credential.data(),
      static_cast<int>(options_.digest_credential.size()),
      [](int rc, const void* data) {
        static_cast<std::promise<int>*>(const_cast<void*>(data))->set_value(rc);
      },
      &result);
  int rc = code;
  if (code == ZOK) {
    std::future<int> future = result.get_future();
    if (future.wait_for(std::chrono::milliseconds(options_.connect_timeout_ms)) !=
        std::future_status::ready) {
      // The completion may still come: it must not find a dead promise, so
      // close the session (which delivers it) before returning.
      close_session();
      if (error != nullptr)
        *error = "ZooKeeper did not answer the credential in time";
      return false;
    }
    rc = future.get();
  }
  if (rc != ZOK) {
    if (error != nullptr)
      *error = "ZooKeeper refused the credential: " + zk_error(rc);
    return false;
  }
  return true;
}

void ZooKeeperClient::replace_expired_session() {
  close_session();
  std::string reason;
  for (;;) {
    {
      std::lock_guard lock(mutex_);
      if (stopping_)
        return;
    }
    if (open_session(std::chrono::milliseconds(options_.connect_timeout_ms), &reason))
      break;
    log(LogLevel::kWarning, "ZooKeeper session expired; reconnecting: " + reason);
    std::unique_lock lock(mutex_);
    changed_.wait_for(lock, std::chrono::seconds(1), [&] { return stopping_; });
  }
  {
    std::lock_guard lock(mutex_);
    ++sessions_replaced_;
  }
  // The old session's ephemeral nodes and watches died with it.
  for (const auto& [path, data] : ephemerals_) {
    if (!create_node(path, data, &reason)) {
      log(LogLevel::kError, "could not re-create " + path + ": " + reason);
    }
  }
  for (auto& [path, watch] : watches_)
    watch.armed = false;
  refresh_unarmed_watches();
}

bool ZooKeeperClient::refresh_watch(const std::string& path, Watch& watch) {
  if (handle_ == nullptr) {
    watch.armed = false;
    return false;
  }
  Children children;
  for (int attempt = 0;; ++attempt) {
    String_vector names{0, nullptr};
    int rc = zoo_wget_children(handle_, path.c_str(), &ZooKeeperClient::on_watcher_event,
                               contexts_.back().get(), &names);
    if (rc == ZNONODE) {
      // Not there yet: watch for its creation instead.
      Stat stat;
      rc = zoo_wexists(handle_, path.c_str(), &ZooKeeperClient::on_watcher_event,
                       contexts_.back().get(), &stat);
      if (rc == ZOK && attempt < 3)
        continue;  // Created meanwhile: list it.
      if (rc != ZNONODE && rc != ZOK)
        break;
      watch.armed = true;
      break;
    }
    if (rc != ZOK) {
      watch.armed = false;
      break;
    }
    std::vector<char> buffer;
    for (int32_t i = 0; i < names.count; ++i) {
      const std::string child = names.data[i];
      const auto known = watch.children.find(child);
      if (known != watch.children.end()) {
        children.emplace(child, known->second);  // Instance data does not change.
        continue;
      }
      buffer.resize(kMaxNodeBytes);
      int length = kMaxNodeBytes;
      Stat stat;
      const int get_rc =
          zoo_get(handle_, (path + "/" + child).c_str(), 0, buffer.data(), &length, &stat);
      if (get_rc == ZNONODE)
        continue;  // Gone already.
      if (get_rc != ZOK) {
        rc = get_rc;
        break;
      }
      children.emplace(child, std::string(buffer.data(), length < 0 ? 0 : length));
    }
    deallocate_String_vector(&names);
    if (rc != ZOK) {
      watch.armed = false;
      break;
    }
    watch.armed = true;
    break;
  }
  if (!watch.armed) {
    retry_at_ = std::min(retry_at_, std::chrono::steady_clock::now() + kRetryInterval);
    return false;  // Keep the last known children meanwhile.
  }
  if (children != watch.children) {
    watch.children = children;
    if (watch.listener)
      watch.listener(watch.children);
  }
  return true;
}

void ZooKeeperClient::refresh_unarmed_watches() {
  retry_at_ = std::chrono::steady_clock::time_point::max();
  if (handle_ == nullptr)
    return;
  for (auto& [path, watch] : watches_) {
    if (!watch.armed)
      refresh_watch(path, watch);
  }
}

bool ZooKeeperClient::create_parents(const std::string& path, std::string* error) {
  const size_t last = path.rfind('/');
  for (size_t slash = path.find('/', 1); slash != std::string::npos && slash <= last;
       slash = path.find('/', slash + 1)) {
    const std::string parent = path.substr(0, slash);
    // The service node (the direct parent) guards its instances.
    const bool guarded = slash == last && !options_.digest_credential.empty();
    const int rc = zoo_create(handle_, parent.c_str(), nullptr, -1,
                              guarded ? protected_acl() : &ZOO_OPEN_ACL_UNSAFE, 0, nullptr, 0);
    if (rc != ZOK && rc != ZNODEEXISTS) {
      if (error != nullptr)
        *error = "cannot create " + parent + ": " + zk_error(rc);
      return false;
    }
  }
  return true;
}

bool ZooKeeperClient::create_node(const std::string& path, const std::string& data,
                                  std::string* error) {
  if (handle_ == nullptr) {
    if (error != nullptr)
      *error = "no ZooKeeper session";
    return false;
  }
  ACL_vector* acl = options_.digest_credential.empty() ? &ZOO_OPEN_ACL_UNSAFE : protected_acl();
  for (int attempt = 0; attempt < 5; ++attempt) {
    int rc = zoo_create(handle_, path.c_str(), data.data(), static_cast<int>(data.size()), acl,
                        ZOO_EPHEMERAL, nullptr, 0);
    if (rc == ZOK)
      return true;
    if (rc == ZNONODE) {
      if (!create_parents(path, error))
        return false;
      continue;
    }
    if (rc == ZNODEEXISTS) {
      // Ours (a create retried after a connection loss): keep it, refresh the
      // data. Someone else's, or an earlier session's: replace it.
      Stat stat;
      rc = zoo_exists(handle_, path.c_str(), 0, &stat);
      if (rc == ZNONODE)
        continue;
      if (rc == ZOK && stat.ephemeralOwner == zoo_client_id(handle_)->client_id) {
        rc = zoo_set(handle_, path.c_str(), data.data(), static_cast<int>(data.size()), -1);
        if (rc == ZOK)
          return true;
      } else if (rc == ZOK) {
        rc = zoo_delete(handle_, path.c_str(), -1);
        if (rc == ZOK || rc == ZNONODE)
          continue;
      }
    }
    if (error != nullptr)
      *error = "cannot create " + path + ": " + zk_error(rc);
    return false;
  }
  if (error != nullptr)
    *error = "cannot create " + path + ": it keeps changing";
  return false;
}

bool ZooKeeperClient::create_ephemeral(const std::string& path, const std::string& data,
                                       std::string* error) {
  bool ok = false;
  run_on_session_thread([&] {
    ok = create_node(path, data, error);
    if (ok)
      ephemerals_[path] = data;
  });
  return ok;
}

bool ZooKeeperClient::delete_ephemeral(const std::string& path, std::string* error) {
  bool ok = false;
  run_on_session_thread([&] {
    ephemerals_.erase(path);
    if (handle_ == nullptr) {
      if (error != nullptr)
        *error = "no ZooKeeper session";
      return;
    }
    const int rc = zoo_delete(handle_, path.c_str(), -1);
    ok = rc == ZOK || rc == ZNONODE;
    if (!ok && error != nullptr)
      *error = "cannot delete " + path + ": " + zk_error(rc);
  });
  return ok;
}

std::optional<ZooKeeperClient::Children> ZooKeeperClient::watch_children(const std::string& path,
                                                                         ChildrenListener listener,
                                                                         std::string* error) {
  std::optional<Children> children;
  run_on_session_thread([&] {
    Watch& watch = watches_[path];
    if (!refresh_watch(path, watch)) {
      watches_.erase(path);
      if (error != nullptr)
        *error = "cannot read " + path + " from ZooKeeper";
      return;
    }
    // Only later changes go to the listener: the caller has these.
    watch.listener = std::move(listener);
    children = watch.children;
  });
  return children;
}

void ZooKeeperClient::set_session_listener(SessionListener listener) {
  std::lock_guard lock(mutex_);
  session_listener_ = std::move(listener);
}

std::pair<int64_t, std::string> ZooKeeperClient::session() const {
  std::lock_guard lock(mutex_);
  return {session_id_, session_password_};
}

int ZooKeeperClient::sessions_replaced() const {
  std::lock_guard lock(mutex_);
  return sessions_replaced_;
}

bool ZooKeeperClient::get_children(const std::string& path, std::vector<std::string>* children,
                                   std::string* error) {
  bool ok = false;
  run_on_session_thread([&] {
    String_vector names{0, nullptr};
    const int rc =
        handle_ == nullptr ? ZINVALIDSTATE : zoo_get_children(handle_, path.c_str(), 0, &names);
    if (rc != ZOK) {
      if (error != nullptr)
        *error = path + ": " + zk_error(rc);
      return;
    }
    for (int32_t i = 0; i < names.count; ++i)
      children->push_back(names.data[i]);
    deallocate_String_vector(&names);
    ok = true;
  });
  return ok;
}

bool ZooKeeperClient::get_data(const std::string& path, std::string* data, std::string* error) {
  bool ok = false;
  run_on_session_thread([&] {
    std::vector<char> buffer(kMaxNodeBytes);
    int length = kMaxNodeBytes;
    Stat stat;
    const int rc = handle_ == nullptr
                       ? ZINVALIDSTATE
                       : zoo_get(handle_, path.c_str(), 0, buffer.data(), &length, &stat);
    if (rc != ZOK) {
      if (error != nullptr)
        *error = path + ": " + zk_error(rc);
      return;
    }
    data->assign(buffer.data(), length < 0 ? 0 : length);
    ok = true;
  });
  return ok;
}

}  // namespace percore
