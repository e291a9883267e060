#include <percore/discovery/zookeeper_client.h>

// The C client's header declares its synchronous API only with THREADED; we
// use the asynchronous one, but link the multi-threaded library.
#define THREADED
#include <zookeeper/zookeeper.h>

#include <algorithm>
#include <random>

#include <percore/base/log.h>
#include <percore/proto/detail/assert.h>

namespace percore {
namespace {

using std::chrono::milliseconds;

constexpr auto kRetryInterval = milliseconds(500);
constexpr auto kExpiredRetryInterval = std::chrono::seconds(1);

std::string zk_error(int code) {
  if (code == ZOPERATIONTIMEOUT)
    return "no answer in time";
  return zerror(code);
}

// The C client's own log lines (it writes one per failed reconnect, several
// a second through an outage) go to percore's log, rate-limited.
void log_from_c_client(const char* message) {
  static LogRateLimiter limiter;
  limiter.log(LogLevel::kWarning, [message] {
    std::string text = std::string("ZooKeeper C client: ") + message;
    while (!text.empty() && (text.back() == '\n' || text.back() == '\r'))
      text.pop_back();
    return text;
  });
}

// "h1:p1, h2:p2," -> {"h1:p1", "h2:p2"}.
std::vector<std::string> split_members(const std::string& hosts) {
  std::vector<std::string> members;
  size_t start = 0;
  while (start <= hosts.size()) {
    size_t end = hosts.find(',', start);
    if (end == std::string::npos)
      end = hosts.size();
    std::string member = hosts.substr(start, end - start);
    member.erase(0, member.find_first_not_of(" \t"));
    member.erase(member.find_last_not_of(" \t") + 1);
    if (!member.empty())
      members.push_back(std::move(member));
    start = end + 1;
  }
  return members;
}

// Creator-all (for holders of the credential) + world-read.
ACL_vector* protected_acl() {
  static ACL entries[2] = {{ZOO_PERM_ALL, ZOO_AUTH_IDS}, {ZOO_PERM_READ, ZOO_ANYONE_ID_UNSAFE}};
  static ACL_vector vector = {2, entries};
  return &vector;
}

}  // namespace

// One asynchronous call's answer. The completion fills it on the C client's
// completion thread under the client's mutex; the session thread reads it
// once `done`.
struct ZooKeeperClient::Operation {
  ZooKeeperClient* client = nullptr;
  bool done = false;
  int rc = ZOK;
  std::string data;
  Stat stat{};
  std::vector<std::string> children;
  // A transaction's operations and answers: the C client fills `results`
  // when it completes.
  std::vector<zoo_op_t> ops;
  std::vector<zoo_op_result_t> results;

  // Completions, for the C client.
  static void finish(const void* context, int rc, const std::function<void(Operation&)>& fill) {
    auto* operation = static_cast<Operation*>(const_cast<void*>(context));
    ZooKeeperClient& client = *operation->client;
    {
      std::lock_guard lock(client.mutex_);
      operation->rc = rc;
      if (rc == ZOK && fill)
        fill(*operation);
      operation->done = true;
    }
    client.changed_.notify_all();
  }
  static void on_void(int rc, const void* context) { finish(context, rc, nullptr); }
  static void on_string(int rc, const char*, const void* context) { finish(context, rc, nullptr); }
  static void on_stat(int rc, const Stat* stat, const void* context) {
    finish(context, rc, [stat](Operation& operation) {
      if (stat != nullptr)
        operation.stat = *stat;
    });
  }
  static void on_data(int rc, const char* value, int length, const Stat* stat,
                      const void* context) {
    finish(context, rc, [=](Operation& operation) {
      if (value != nullptr && length > 0)
        operation.data.assign(value, static_cast<size_t>(length));
      if (stat != nullptr)
        operation.stat = *stat;
    });
  }
  static void on_strings(int rc, const String_vector* strings, const void* context) {
    finish(context, rc, [strings](Operation& operation) {
      if (strings == nullptr)
        return;
      for (int32_t i = 0; i < strings->count; ++i)
        operation.children.emplace_back(strings->data[i]);
    });
  }
};

ZooKeeperClient::ZooKeeperClient(ZooKeeperOptions options)
    : options_(std::move(options)), members_(split_members(options_.hosts)) {
  static std::once_flag once;
  std::call_once(once, [] {
    zoo_set_debug_level(ZOO_LOG_LEVEL_ERROR);
    // We order the members ourselves (below), so the C client must keep it.
    zoo_deterministic_conn_order(1);
  });
  // A random order per client spreads the clients over the ensemble, as the
  // C client's own shuffle would.
  std::shuffle(members_.begin(), members_.end(), std::mt19937(std::random_device{}()));
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

void ZooKeeperClient::assert_in_session_thread() const {
  PERCORE_ASSERT(std::this_thread::get_id() == session_thread_id_.load());
}

ZooKeeperClient::Clock::time_point ZooKeeperClient::connect_deadline() const {
  return Clock::now() + milliseconds(std::max(1, options_.connect_timeout_ms));
}

bool ZooKeeperClient::connect(std::string* error) {
  const auto deadline = connect_deadline();
  session_thread_ = std::thread([this] { run_session_thread(); });
  session_thread_id_.store(session_thread_.get_id());
  bool ok = false;
  std::string reason = "ZooKeeper client stopped";
  run_on_session_thread([&] { ok = open_session(deadline, &reason); }, deadline);
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
      self.disconnected_since_.reset();
      self.events_.push_back(Event{Event::Kind::kConnected, {}, {}, {}});
    } else if (state == ZOO_EXPIRED_SESSION_STATE) {
      self.connected_ = false;
      self.events_.push_back(Event{Event::Kind::kSessionExpired, {}, {}, {}});
    } else if (state == ZOO_AUTH_FAILED_STATE) {
      self.auth_failed_ = true;
    } else {
      // Connecting again: the C client handles it, unless it takes the
      // whole session timeout (session_surely_lost).
      if (self.connected_) {
        self.disconnected_since_ = Clock::now();
        self.events_.push_back(Event{Event::Kind::kDisconnected, {}, {}, {}});
      }
      self.connected_ = false;
    }
  } else if (path != nullptr) {
    // Children changed, a child's data changed, a node appeared or went, or
    // the server dropped the watch: read it again (which re-arms it).
    self.events_.push_back(Event{Event::Kind::kWatchFired, path, {}, {}});
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

bool ZooKeeperClient::run_on_session_thread(std::function<void()> task,
                                            Clock::time_point deadline) {
  PERCORE_ASSERT(std::this_thread::get_id() != session_thread_id_.load());
  auto state = std::make_shared<TaskState>();
  queue(Event{Event::Kind::kTask, {}, std::move(task), state});
  std::unique_lock lock(mutex_);
  changed_.wait_until(lock, deadline, [&] { return state->done; });
  if (!state->started && !state->done) {
    state->abandoned = true;  // It will never run: its captures may go.
    return false;
  }
  changed_.wait(lock, [&] { return state->done; });
  return state->started;
}

void ZooKeeperClient::run_session_thread() {
  for (;;) {
    Event event;
    {
      std::unique_lock lock(mutex_);
      auto wake = retry_at_;
      if (disconnected_since_)
        wake = std::min(wake, *disconnected_since_ + negotiated_timeout_);
      changed_.wait_until(lock, wake, [&] { return stopping_ || !events_.empty(); });
      if (stopping_)
        break;
      if (session_surely_lost(Clock::now())) {
        if (handle_ != nullptr && zoo_state(handle_) == ZOO_CONNECTED_STATE) {
          // Back just now (its event is on the way): giving the session up
          // would send a close, and the close deletes our ephemeral nodes.
          disconnected_since_.reset();
          continue;
        }
        const auto timeout = negotiated_timeout_;
        lock.unlock();
        log(LogLevel::kWarning, "no ZooKeeper member of " + options_.hosts + " answered for " +
                                    std::to_string(timeout.count()) +
                                    " ms, the session timeout: the session has expired; "
                                    "opening a new one");
        replace_expired_session();
        continue;
      }
      if (events_.empty()) {
        lock.unlock();
        refresh_unarmed_watches();  // The retry time came.
        continue;
      }
      event = std::move(events_.front());
      events_.pop_front();
    }
    switch (event.kind) {
      case Event::Kind::kTask: {
        bool run;
        {
          std::lock_guard lock(mutex_);
          run = !event.state->abandoned;
          event.state->started = run;
        }
        if (run)
          event.task();
        {
          std::lock_guard lock(mutex_);
          event.state->done = true;
        }
        changed_.notify_all();
        break;
      }
      case Event::Kind::kConnected:
        refresh_unarmed_watches();
        break;
      case Event::Kind::kDisconnected:
        break;  // Only wakes the loop: the wait now ends at the session timeout.
      case Event::Kind::kSessionExpired:
        replace_expired_session();
        break;
      case Event::Kind::kWatchFired:
        on_watch_fired(event.path);
        break;
    }
  }
  close_session();
  // Tasks still queued never run; their callers learn it now.
  std::lock_guard lock(mutex_);
  for (Event& event : events_) {
    if (event.kind == Event::Kind::kTask)
      event.state->done = true;
  }
  events_.clear();
  changed_.notify_all();
}

std::shared_ptr<ZooKeeperClient::Operation> ZooKeeperClient::begin(
    const std::function<int(Operation*)>& start) {
  assert_in_session_thread();
  auto operation = std::make_shared<Operation>();
  operation->client = this;
  const int rc = handle_ == nullptr ? ZINVALIDSTATE : start(operation.get());
  if (rc != ZOK) {
    // Not sent: no completion will come.
    operation->rc = rc;
    operation->done = true;
    return operation;
  }
  in_flight_.push_back(operation);
  return operation;
}

int ZooKeeperClient::await(Operation& operation, Clock::time_point deadline) {
  assert_in_session_thread();
  std::unique_lock lock(mutex_);
  changed_.wait_until(lock, deadline, [&] { return operation.done || stopping_; });
  const int rc = operation.done ? operation.rc : stopping_ ? ZCLOSING : ZOPERATIONTIMEOUT;
  std::erase_if(in_flight_, [](const std::shared_ptr<Operation>& pending) {
    return pending->done;
  });
  return rc;
}

int ZooKeeperClient::get(const std::string& path, bool watch, std::string* data,
                         Clock::time_point deadline) {
  auto operation = begin([&](Operation* context) {
    return watch ? zoo_awget(handle_, path.c_str(), &ZooKeeperClient::on_watcher_event,
                             contexts_.back().get(), &Operation::on_data, context)
                 : zoo_aget(handle_, path.c_str(), 0, &Operation::on_data, context);
  });
  const int rc = await(*operation, deadline);
  if (rc == ZOK)
    *data = std::move(operation->data);
  return rc;
}

bool ZooKeeperClient::session_surely_lost(Clock::time_point now) const {
  return disconnected_since_ && negotiated_timeout_.count() > 0 &&
         now >= *disconnected_since_ + negotiated_timeout_;
}

int ZooKeeperClient::try_member_order(Clock::time_point until) {
  assert_in_session_thread();
  uint64_t generation;
  {
    std::lock_guard lock(mutex_);
    generation = ++generation_;
    connected_ = false;
    disconnected_since_.reset();
    auth_failed_ = false;
  }
  std::string hosts;
  for (size_t i = 0; i < members_.size(); ++i) {
    if (i > 0)
      hosts += ',';
    hosts += members_[(first_member_ + i) % members_.size()];
  }
  contexts_.push_back(std::make_unique<HandleContext>(HandleContext{this, generation}));
  handle_ = zookeeper_init2(hosts.c_str(), &ZooKeeperClient::on_watcher_event,
                            options_.session_timeout_ms, nullptr, contexts_.back().get(), 0,
                            &log_from_c_client);
  if (handle_ == nullptr)
    return -1;
  std::unique_lock lock(mutex_);
  if (changed_.wait_until(lock, until, [&] { return connected_ || stopping_; }) && !stopping_)
    return 1;
  lock.unlock();
  close_session();
  return 0;
}

bool ZooKeeperClient::open_session(Clock::time_point deadline, std::string* error) {
  assert_in_session_thread();
  // Each member in turn gets a share of the wait, starting elsewhere each
  // time; a single member gets all of it. Within an attempt the C client
  // itself moves on from members that refuse the connection.
  const auto start = Clock::now();
  const auto share =
      members_.size() <= 1
          ? deadline - start
          : std::max<Clock::duration>(milliseconds(500), (deadline - start) / members_.size());
  int outcome = 0;
  while (outcome == 0) {
    outcome = try_member_order(std::min(deadline, Clock::now() + share));
    if (outcome == 1)
      break;
    if (!members_.empty())
      first_member_ = (first_member_ + 1) % members_.size();
    std::lock_guard lock(mutex_);
    if (stopping_ || Clock::now() >= deadline)
      break;
  }
  if (outcome < 0) {
    if (error != nullptr)
      *error = "bad ZooKeeper hosts '" + options_.hosts + "'";
    return false;
  }
  if (outcome == 0) {
    if (error != nullptr) {
      *error = "ZooKeeper unreachable at " + options_.hosts + ": no session within " +
               std::to_string(options_.connect_timeout_ms) + " ms";
    }
    return false;
  }
  if (!authenticate(deadline, error)) {
    close_session();
    return false;
  }
  const clientid_t* id = zoo_client_id(handle_);
  SessionListener listener;
  {
    std::lock_guard lock(mutex_);
    negotiated_timeout_ = milliseconds(zoo_recv_timeout(handle_));
    session_id_ = id->client_id;
    session_password_.assign(id->passwd, sizeof(id->passwd));
    listener = session_listener_;
  }
  if (listener)
    listener(id->client_id, std::string(id->passwd, sizeof(id->passwd)));
  return true;
}

void ZooKeeperClient::close_session() {
  assert_in_session_thread();
  if (handle_ == nullptr)
    return;
  {
    std::lock_guard lock(mutex_);
    ++generation_;  // Late events of this handle are dropped.
    connected_ = false;
    disconnected_since_.reset();
  }
  // Joins the C client's threads and runs every outstanding completion (with
  // ZCLOSING): after it, no completion can touch in_flight_'s answers.
  zookeeper_close(handle_);
  handle_ = nullptr;
  in_flight_.clear();
  contexts_.clear();
}

bool ZooKeeperClient::authenticate(Clock::time_point deadline, std::string* error) {
  assert_in_session_thread();
  if (options_.digest_credential.empty())
    return true;
  auto operation = begin([&](Operation* context) {
    return zoo_add_auth(handle_, "digest", options_.digest_credential.data(),
                        static_cast<int>(options_.digest_credential.size()), &Operation::on_void,
                        context);
  });
  const int rc = await(*operation, deadline);
  if (rc == ZOPERATIONTIMEOUT) {
    if (error != nullptr)
      *error = "ZooKeeper did not answer the credential in time";
    return false;
  }
  if (rc != ZOK) {
    if (error != nullptr)
      *error = "ZooKeeper refused the credential: " + zk_error(rc);
    return false;
  }
  return true;
}

void ZooKeeperClient::replace_expired_session() {
  assert_in_session_thread();
  close_session();
  std::string reason;
  for (;;) {
    if (open_session(connect_deadline(), &reason))
      break;
    std::unique_lock lock(mutex_);
    if (stopping_)
      return;
    log(LogLevel::kWarning, "ZooKeeper session expired; reconnecting: " + reason);
    changed_.wait_for(lock, kExpiredRetryInterval, [&] { return stopping_; });
    if (stopping_)
      return;
  }
  {
    std::lock_guard lock(mutex_);
    ++sessions_replaced_;
  }
  // The old session's ephemeral nodes and watches died with it.
  const auto deadline = Clock::now() + milliseconds(options_.session_timeout_ms);
  for (const auto& [path, data] : ephemerals_) {
    if (!create_node(path, data, deadline, &reason)) {
      log(LogLevel::kError, "could not re-create " + path + ": " + reason);
    }
  }
  for (auto& [path, watch] : watches_) {
    watch.armed = false;
    watch.data_watched.clear();
  }
  refresh_unarmed_watches();
}

bool ZooKeeperClient::refresh_children(const std::string& path, Watch& watch,
                                       Clock::time_point deadline) {
  assert_in_session_thread();
  std::vector<std::string> names;
  int rc = ZOK;
  for (int attempt = 0;; ++attempt) {
    auto listing = begin([&](Operation* context) {
      return zoo_awget_children(handle_, path.c_str(), &ZooKeeperClient::on_watcher_event,
                                contexts_.back().get(), &Operation::on_strings, context);
    });
    rc = await(*listing, deadline);
    if (rc == ZOK) {
      names = std::move(listing->children);
      break;
    }
    if (rc != ZNONODE)
      break;
    // Not there yet: watch for its creation instead.
    auto exists = begin([&](Operation* context) {
      return zoo_awexists(handle_, path.c_str(), &ZooKeeperClient::on_watcher_event,
                          contexts_.back().get(), &Operation::on_stat, context);
    });
    rc = await(*exists, deadline);
    if (rc == ZOK && attempt < 3)
      continue;  // Created meanwhile: list it.
    if (rc == ZNONODE)
      rc = ZOK;  // No children; the creation watch is armed.
    break;
  }
  bool complete = rc == ZOK;
  if (complete) {
    // Children that went; the rest keep their data until read again.
    const std::set<std::string> listed(names.begin(), names.end());
    std::erase_if(watch.children, [&](const auto& child) { return !listed.contains(child.first); });
    std::erase_if(watch.data_watched, [&](const auto& name) { return !listed.contains(name); });
    // Reads of children whose data is not watched (new ones, and ones whose
    // watch fired or was lost), all sent before any answer is awaited.
    std::vector<std::pair<std::string, std::shared_ptr<Operation>>> reads;
    for (const std::string& name : names) {
      if (watch.data_watched.contains(name))
        continue;
      const std::string child_path = path + "/" + name;
      reads.emplace_back(name, begin([&](Operation* context) {
                           return zoo_awget(handle_, child_path.c_str(),
                                            &ZooKeeperClient::on_watcher_event,
                                            contexts_.back().get(), &Operation::on_data, context);
                         }));
    }
    for (auto& [name, read] : reads) {
      const int read_rc = await(*read, deadline);
      if (read_rc == ZOK) {
        watch.children[name] = std::move(read->data);
        watch.data_watched.insert(name);
      } else if (read_rc == ZNONODE) {
        watch.children.erase(name);  // Gone already; its children event follows.
      } else {
        complete = false;  // Keep what was known of it; read again later.
      }
    }
  }
  watch.armed = complete;
  if (!complete) {
    retry_at_ = std::min(retry_at_, Clock::now() + kRetryInterval);
    return false;
  }
  deliver(watch);
  return true;
}

void ZooKeeperClient::refresh_child(const std::string& path, Watch& watch,
                                    const std::string& child) {
  assert_in_session_thread();
  watch.data_watched.erase(child);
  if (!watch.armed)
    return;  // A full read is due: it reads this child too.
  std::string data;
  const int rc = get(path + "/" + child, /*watch=*/true, &data,
                     Clock::now() + milliseconds(options_.session_timeout_ms));
  if (rc == ZOK) {
    watch.children[child] = std::move(data);
    watch.data_watched.insert(child);
  } else if (rc == ZNONODE) {
    watch.children.erase(child);
  } else {
    watch.armed = false;  // Read the whole node again after a pause.
    retry_at_ = std::min(retry_at_, Clock::now() + kRetryInterval);
    return;
  }
  deliver(watch);
}

void ZooKeeperClient::deliver(Watch& watch) {
  assert_in_session_thread();
  if (!watch.listener || (watch.delivered && *watch.delivered == watch.children))
    return;
  watch.delivered = watch.children;
  watch.listener(watch.children);
}

void ZooKeeperClient::on_watch_fired(const std::string& path) {
  assert_in_session_thread();
  if (const auto found = watches_.find(path); found != watches_.end()) {
    refresh_children(found->first, found->second,
                     Clock::now() + milliseconds(options_.session_timeout_ms));
    return;
  }
  // A child's data watch: /<watched path>/<child>.
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos || slash == 0)
    return;
  if (const auto found = watches_.find(path.substr(0, slash)); found != watches_.end())
    refresh_child(found->first, found->second, path.substr(slash + 1));
}

void ZooKeeperClient::refresh_unarmed_watches() {
  assert_in_session_thread();
  retry_at_ = Clock::time_point::max();
  if (handle_ == nullptr)
    return;
  for (auto& [path, watch] : watches_) {
    if (!watch.armed)
      refresh_children(path, watch, Clock::now() + milliseconds(options_.session_timeout_ms));
  }
}

bool ZooKeeperClient::create_parents(const std::string& path, Clock::time_point deadline,
                                     std::string* error) {
  assert_in_session_thread();
  const size_t last = path.rfind('/');
  for (size_t slash = path.find('/', 1); slash != std::string::npos && slash <= last;
       slash = path.find('/', slash + 1)) {
    const std::string parent = path.substr(0, slash);
    // The service node (the direct parent) guards its instances.
    const bool guarded = slash == last && !options_.digest_credential.empty();
    auto create = begin([&](Operation* context) {
      return zoo_acreate(handle_, parent.c_str(), nullptr, -1,
                         guarded ? protected_acl() : &ZOO_OPEN_ACL_UNSAFE, 0,
                         &Operation::on_string, context);
    });
    const int rc = await(*create, deadline);
    if (rc != ZOK && rc != ZNODEEXISTS) {
      if (error != nullptr)
        *error = "cannot create " + parent + ": " + zk_error(rc);
      return false;
    }
  }
  return true;
}

bool ZooKeeperClient::create_node(const std::string& path, const std::string& data,
                                  Clock::time_point deadline, std::string* error) {
  assert_in_session_thread();
  if (handle_ == nullptr) {
    if (error != nullptr)
      *error = "no ZooKeeper session";
    return false;
  }
  ACL_vector* acl = options_.digest_credential.empty() ? &ZOO_OPEN_ACL_UNSAFE : protected_acl();
  const int size = static_cast<int>(data.size());
  for (int attempt = 0; attempt < 5; ++attempt) {
    auto create = begin([&](Operation* context) {
      return zoo_acreate(handle_, path.c_str(), data.data(), size, acl, ZOO_EPHEMERAL,
                         &Operation::on_string, context);
    });
    int rc = await(*create, deadline);
    if (rc == ZOK)
      return true;
    if (rc == ZNONODE) {
      if (!create_parents(path, deadline, error))
        return false;
      continue;
    }
    if (rc == ZNODEEXISTS) {
      // Ours (a create retried after a connection loss): keep it, refresh the
      // data. Someone else's, or an earlier session's: replace it (Curator's
      // ServiceDiscovery deletes and creates again; percore does both at once).
      auto exists = begin([&](Operation* context) {
        return zoo_aexists(handle_, path.c_str(), 0, &Operation::on_stat, context);
      });
      rc = await(*exists, deadline);
      if (rc == ZNONODE)
        continue;
      if (rc == ZOK && exists->stat.ephemeralOwner == zoo_client_id(handle_)->client_id) {
        auto set = begin([&](Operation* context) {
          return zoo_aset(handle_, path.c_str(), data.data(), size, -1, &Operation::on_stat,
                          context);
        });
        rc = await(*set, deadline);
        if (rc == ZOK)
          return true;
      } else if (rc == ZOK) {
        // One transaction: watchers never see the service without the
        // instance, as they would between a delete and a create.
        const int32_t version = exists->stat.version;
        auto replace = begin([&](Operation* context) {
          context->ops.resize(2);
          context->results.resize(2);
          zoo_delete_op_init(&context->ops[0], path.c_str(), version);
          zoo_create_op_init(&context->ops[1], path.c_str(), data.data(), size, acl,
                             ZOO_EPHEMERAL, nullptr, 0);
          return zoo_amulti(handle_, 2, context->ops.data(), context->results.data(),
                            &Operation::on_void, context);
        });
        rc = await(*replace, deadline);
        if (rc == ZOK)
          return true;
        if (rc == ZNONODE || rc == ZBADVERSION || rc == ZNODEEXISTS)
          continue;  // It changed meanwhile: look again.
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
  const auto deadline = connect_deadline();
  bool ok = false;
  std::string reason;
  const bool ran = run_on_session_thread(
      [&] {
        ok = create_node(path, data, deadline, &reason);
        if (ok)
          ephemerals_[path] = data;
      },
      deadline);
  if (!ran)
    reason = "cannot create " + path + ": ZooKeeper session busy past the timeout";
  if (!ok && error != nullptr)
    *error = reason;
  return ok;
}

bool ZooKeeperClient::delete_ephemerals(milliseconds timeout, std::string* error) {
  const auto deadline = Clock::now() + timeout;
  std::string failed;
  const bool ran = run_on_session_thread(
      [&] {
        std::vector<std::pair<std::string, std::shared_ptr<Operation>>> deletes;
        for (const auto& ephemeral : ephemerals_) {
          // Not a structured binding: clang 14 cannot capture one in a lambda.
          const std::string& path = ephemeral.first;
          deletes.emplace_back(path, begin([&](Operation* context) {
                                 return zoo_adelete(handle_, path.c_str(), -1,
                                                    &Operation::on_void, context);
                               }));
        }
        ephemerals_.clear();
        for (auto& [path, remove] : deletes) {
          const int rc = await(*remove, deadline);
          if (rc == ZOK || rc == ZNONODE)
            continue;
          if (!failed.empty())
            failed += "; ";
          failed += path + ": " + zk_error(rc);
        }
      },
      deadline);
  if (!ran)
    failed = "ZooKeeper session busy (reconnecting) past the timeout";
  if (!failed.empty() && error != nullptr) {
    *error = std::string("deregistration not confirmed within ") + std::to_string(timeout.count()) +
             " ms: " + failed;
  }
  return failed.empty();
}

bool ZooKeeperClient::watch_children(const std::string& path, ChildrenListener listener,
                                     Clock::time_point deadline, std::string* error) {
  bool ok = false;
  const bool ran = run_on_session_thread(
      [&] {
        Watch& watch = watches_[path];
        if (!refresh_children(path, watch, deadline)) {
          watches_.erase(path);
          return;
        }
        watch.listener = std::move(listener);
        deliver(watch);
        ok = true;
      },
      deadline);
  if (!ok && error != nullptr) {
    *error = ran ? "cannot read " + path + " from ZooKeeper in time"
                 : "cannot read " + path + ": ZooKeeper session busy past the timeout";
  }
  return ok;
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
  const auto deadline = connect_deadline();
  int rc = ZOPERATIONTIMEOUT;
  run_on_session_thread(
      [&] {
        auto listing = begin([&](Operation* context) {
          return zoo_aget_children(handle_, path.c_str(), 0, &Operation::on_strings, context);
        });
        rc = await(*listing, deadline);
        if (rc == ZOK)
          *children = std::move(listing->children);
      },
      deadline);
  if (rc != ZOK && error != nullptr)
    *error = path + ": " + zk_error(rc);
  return rc == ZOK;
}

bool ZooKeeperClient::get_data(const std::string& path, std::string* data, std::string* error) {
  const auto deadline = connect_deadline();
  int rc = ZOPERATIONTIMEOUT;
  run_on_session_thread([&] { rc = get(path, /*watch=*/false, data, deadline); }, deadline);
  if (rc != ZOK && error != nullptr)
    *error = path + ": " + zk_error(rc);
  return rc == ZOK;
}

}  // namespace percore
