#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

// The C client's handle type, without pulling its header into ours.
typedef struct _zhandle zhandle_t;

namespace percore {

// How percore's waits relate to ZooKeeper's own timing (C client 3.8,
// zookeeper.c): the session timeout T is asked of the server, which clamps
// it to 2..20 ticks. The C client pings after T/3 without sending and gives
// up on a server that sent nothing for 2T/3, then tries the next host of the
// ensemble; the session (and its ephemeral nodes) lives on if some server
// hears from it within T. A synchronous C call on a silent server therefore
// waits up to 2T/3. percore makes no synchronous C calls: every wait below is
// bounded by its own documented timeout, whatever ZooKeeper does.
//
// Two of the C client's waits are shortened, as Apache Curator does:
// - The first session: the members are tried in an order of our own (a
//   random one per client), each for a share of connect_timeout_ms: a
//   member that accepts connections but never answers (frozen, overloaded)
//   costs that share, not 2T/3.
// - A session that has heard from no member for its whole negotiated
//   timeout has surely expired on the servers' side; when the C client has
//   not said so (it cannot reach a member that would: e.g. an ensemble that
//   came back without its data refuses it forever), it is treated as
//   expired and replaced.
struct ZooKeeperOptions {
  // "host:port[,host:port...]" of the ensemble.
  std::string hosts;
  // Session timeout asked of the server (it clamps it to its own 2..20
  // ticks: 4 s..40 s with ZooKeeper's default tickTime of 2 s). Default 10 s.
  int session_timeout_ms = 10000;
  // How long a caller waits for ZooKeeper: connect() for the first session,
  // and each later call from another thread for its answer. Default 5 s.
  int connect_timeout_ms = 5000;
  // "user:password" for ZooKeeper's digest scheme; empty: no credential.
  // With one, the service nodes this client creates (the parent of its
  // ephemeral nodes) and the ephemeral nodes get the ACL creator-all +
  // world-read: only holders of the credential add or remove instances.
  std::string digest_credential;
};

// One ZooKeeper session that outlives session expiry: it owns the C client's
// handle and, when the session expires, closes it, opens a new one,
// authenticates again, re-creates every ephemeral node it registered and
// re-arms every watch. Connection loss (without expiry) is left to the C
// client, which keeps the session, its ephemeral nodes and its watches;
// meanwhile the last known children stay in place.
//
// The C client runs watchers and completions on its completion thread, which
// must never block: they only record and wake this class's own session
// thread, which makes every ZooKeeper call, asynchronously, and waits for the
// answer no longer than the caller's deadline (a silent server cannot hold a
// caller, or the destructor, longer than that).
//
// Owns: the handle, the session thread, the registered ephemeral nodes and the
// watches. Threads: public methods from any thread but the session thread
// (they queue work and wait for it, bounded); listeners run on the session
// thread.
class ZooKeeperClient {
 public:
  // Full children of a watched node: child name -> data.
  using Children = std::map<std::string, std::string>;
  using ChildrenListener = std::function<void(const Children& children)>;
  using SessionListener = std::function<void(int64_t session_id, const std::string& password)>;
  using Clock = std::chrono::steady_clock;

  explicit ZooKeeperClient(ZooKeeperOptions options);
  // Bounded: stops the session thread (which gives up any wait at once) and
  // closes the session; the C client spends at most 3 s sending the close
  // request (zookeeper_close's own bound).
  ~ZooKeeperClient();
  ZooKeeperClient(const ZooKeeperClient&) = delete;
  ZooKeeperClient& operator=(const ZooKeeperClient&) = delete;

  // Opens the session and waits for it (bounded by connect_timeout_ms). False
  // with a clear reason if ZooKeeper cannot be reached or refuses the
  // credential.
  bool connect(std::string* error);

  // Creates `path` as an EPHEMERAL node holding `data`, creating missing
  // parents, and keeps it across session expiry. A node already there is
  // taken over if this session owns it, else deleted and created again (a
  // leftover of an earlier session of ours). Bounded by connect_timeout_ms;
  // false with *error, and nothing registered, when the time is up.
  bool create_ephemeral(const std::string& path, const std::string& data, std::string* error);
  // Deletes every node made by create_ephemeral, all at once, and forgets
  // them (they are not re-created after an expiry, whatever the outcome).
  // Waits at most `timeout` in all; false with *error naming what was not
  // confirmed deleted. Closing the session afterwards removes those anyway
  // (at once if ZooKeeper hears the close, else when the session expires).
  bool delete_ephemerals(std::chrono::milliseconds timeout, std::string* error);

  // Watches the children of `path` (which may not exist yet) and the data of
  // each child: every created, deleted or rewritten child shows in the next
  // map. The current children go to `listener` (on the session thread)
  // before this returns; afterwards it gets the full new map on every
  // change, in order. Waits until `deadline`; false with *error (and no
  // watch, no listener call) if the first read does not succeed by then.
  bool watch_children(const std::string& path, ChildrenListener listener,
                      Clock::time_point deadline, std::string* error);

  // Called with the session id and password each time a session is
  // established (tests use them to force an expiry).
  void set_session_listener(SessionListener listener);
  std::pair<int64_t, std::string> session() const;
  // Times a new session replaced an expired one.
  int sessions_replaced() const;

  // One-off reads (for tools), bounded by connect_timeout_ms: children
  // names, and a node's data.
  bool get_children(const std::string& path, std::vector<std::string>* children,
                    std::string* error);
  bool get_data(const std::string& path, std::string* data, std::string* error);

  const ZooKeeperOptions& options() const { return options_; }

 private:
  // A queued task's progress, shared by its caller and the session thread
  // (guarded by mutex_).
  struct TaskState {
    bool started = false;
    bool done = false;
    bool abandoned = false;  // The caller gave up before it started.
  };
  struct Event {
    enum class Kind { kTask, kConnected, kDisconnected, kSessionExpired, kWatchFired };
    Kind kind;
    std::string path;
    std::function<void()> task;
    std::shared_ptr<TaskState> state;  // kTask only.
  };
  struct Watch {
    ChildrenListener listener;
    Children children;                   // As known now.
    std::set<std::string> data_watched;  // Children whose data watch is armed.
    bool armed = false;                  // The children watch is armed.
    std::optional<Children> delivered;   // Last given to the listener.
  };
  // The watcher context of one handle: events of a replaced handle are
  // recognised by their generation and dropped.
  struct HandleContext {
    ZooKeeperClient* client;
    uint64_t generation;
  };
  struct Operation;

  static void on_watcher_event(zhandle_t* handle, int type, int state, const char* path,
                               void* context);
  void queue(Event event);
  // Runs `task` on the session thread and waits for it until `deadline`.
  // False if the task had not started by then: it never runs afterwards. A
  // task that started is waited for to its end (it bounds its own waits by
  // the same deadline). Not from the session thread.
  bool run_on_session_thread(std::function<void()> task, Clock::time_point deadline);
  void run_session_thread();
  void assert_in_session_thread() const;
  Clock::time_point connect_deadline() const;

  // --- session thread only ---
  // Starts an asynchronous call and returns its pending result; `start`
  // issues it with the completion context it is given.
  std::shared_ptr<Operation> begin(const std::function<int(Operation*)>& start);
  // The call's return code once answered; ZOPERATIONTIMEOUT when `deadline`
  // comes first, ZCLOSING when the client stops.
  int await(Operation& operation, Clock::time_point deadline);
  int get(const std::string& path, bool watch, std::string* data, Clock::time_point deadline);
  bool open_session(Clock::time_point deadline, std::string* error);
  // One zookeeper_init with the members starting at first_member_; waits for
  // the session until `until`. 1: a session; 0: none came (handle closed);
  // -1: the C client refused the hosts.
  int try_member_order(Clock::time_point until);
  // True when the session heard from no member for its whole timeout. With
  // mutex_ held.
  bool session_surely_lost(Clock::time_point now) const;
  void close_session();
  bool authenticate(Clock::time_point deadline, std::string* error);
  void replace_expired_session();
  // Reads the children (re-arming the watch) and the data of children whose
  // data watch is not armed, and delivers a changed map. False on a
  // connection problem: the rest is retried meanwhile the last known
  // children stay.
  bool refresh_children(const std::string& path, Watch& watch, Clock::time_point deadline);
  // Reads one child's data again after its data watch fired.
  void refresh_child(const std::string& path, Watch& watch, const std::string& child);
  void deliver(Watch& watch);
  void refresh_unarmed_watches();
  void on_watch_fired(const std::string& path);
  bool create_node(const std::string& path, const std::string& data, Clock::time_point deadline,
                   std::string* error);
  bool create_parents(const std::string& path, Clock::time_point deadline, std::string* error);

  const ZooKeeperOptions options_;

  // Shared with the watcher and completions (C client's completion thread):
  // events, answers and the session state they report. Never held across a
  // ZooKeeper call.
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<Event> events_;
  uint64_t generation_ = 0;  // Of the current handle.
  bool connected_ = false;
  // Since when the session has heard from no member (unset while connected).
  std::optional<Clock::time_point> disconnected_since_;
  // The session timeout the ensemble granted (zoo_recv_timeout).
  std::chrono::milliseconds negotiated_timeout_{0};
  bool auth_failed_ = false;
  bool stopping_ = false;
  int64_t session_id_ = 0;
  std::string session_password_;
  int sessions_replaced_ = 0;
  SessionListener session_listener_;

  // Session thread only.
  zhandle_t* handle_ = nullptr;
  std::vector<std::string> members_;  // "host:port", in this client's order.
  size_t first_member_ = 0;           // Where the next session attempt starts.
  std::vector<std::unique_ptr<HandleContext>> contexts_;
  // Calls not answered yet: their results must outlive a wait that gave up,
  // until the completion runs (zookeeper_close runs the last ones).
  std::vector<std::shared_ptr<Operation>> in_flight_;
  std::map<std::string, std::string> ephemerals_;  // path -> data
  std::map<std::string, Watch> watches_;           // path -> watch
  Clock::time_point retry_at_ = Clock::time_point::max();
  std::thread session_thread_;
  std::atomic<std::thread::id> session_thread_id_{};
};

}  // namespace percore
