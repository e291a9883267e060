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
#include <string>
#include <thread>
#include <vector>

// The C client's handle type, without pulling its header into ours.
typedef struct _zhandle zhandle_t;

namespace percore {

struct ZooKeeperOptions {
  // "host:port[,host:port...]" of the ensemble.
  std::string hosts;
  // Session timeout asked of the server (it clamps it to its own 2..20 ticks).
  // Default 10 s.
  int session_timeout_ms = 10000;
  // How long connect() waits for the first session. Default 5 s.
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
// client, which keeps the session and its ephemeral nodes; meanwhile the last
// known children stay in place.
//
// The C client runs watchers on its completion thread, which must never
// block: the watcher only queues an event for this class's own session thread,
// which makes every (blocking) ZooKeeper call.
//
// Owns: the handle, the session thread, the registered ephemeral nodes and the
// watches. Threads: public methods from any thread (they take the lock or
// queue work); listeners run on the session thread.
class ZooKeeperClient {
 public:
  // Full children of a watched node: child name -> data.
  using Children = std::map<std::string, std::string>;
  using ChildrenListener = std::function<void(const Children& children)>;
  using SessionListener = std::function<void(int64_t session_id, const std::string& password)>;

  explicit ZooKeeperClient(ZooKeeperOptions options);
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
  // leftover of an earlier session of ours).
  bool create_ephemeral(const std::string& path, const std::string& data, std::string* error);
  // Deletes a node made by create_ephemeral and forgets it.
  bool delete_ephemeral(const std::string& path, std::string* error);

  // Watches the children of `path` (which may not exist yet) and their data.
  // Returns the current children; afterwards `listener` gets the full new
  // map on every change (on the session thread). nullopt with *error if the
  // first read fails.
  std::optional<Children> watch_children(const std::string& path, ChildrenListener listener,
                                         std::string* error);

  // Called with the session id and password each time a session is
  // established (tests use them to force an expiry).
  void set_session_listener(SessionListener listener);
  std::pair<int64_t, std::string> session() const;
  // Times a new session replaced an expired one.
  int sessions_replaced() const;

  // One-off reads (for tools): children names, and a node's data.
  bool get_children(const std::string& path, std::vector<std::string>* children,
                    std::string* error);
  bool get_data(const std::string& path, std::string* data, std::string* error);

  const ZooKeeperOptions& options() const { return options_; }

 private:
  struct Event {
    enum class Kind { kTask, kConnected, kSessionExpired, kWatchFired };
    Kind kind;
    std::string path;
    std::function<void()> task;
  };
  struct Watch {
    ChildrenListener listener;
    Children children;  // Last delivered.
    bool armed = false;
  };
  // The watcher context of one handle: events of a replaced handle are
  // recognised by their generation and dropped.
  struct HandleContext {
    ZooKeeperClient* client;
    uint64_t generation;
  };

  static void on_watcher_event(zhandle_t* handle, int type, int state, const char* path,
                               void* context);
  void queue(Event event);
  // Runs `task` on the session thread and waits for it. Not from that thread.
  void run_on_session_thread(std::function<void()> task);
  void run_session_thread();

  // --- session thread only ---
  bool open_session(std::chrono::milliseconds timeout, std::string* error);
  void close_session();
  bool authenticate(std::string* error);
  void replace_expired_session();
  // Reads the children (re-arming the watch) and the data of new children,
  // and delivers a changed map. False on a connection problem: the watch
  // stays unarmed and is retried.
  bool refresh_watch(const std::string& path, Watch& watch);
  void refresh_unarmed_watches();
  bool create_node(const std::string& path, const std::string& data, std::string* error);
  bool create_parents(const std::string& path, std::string* error);

  const ZooKeeperOptions options_;

  // Shared with the watcher (C client's completion thread): events and the
  // session state it reports. Never held across a ZooKeeper call.
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<Event> events_;
  uint64_t generation_ = 0;  // Of the current handle.
  bool connected_ = false;
  bool auth_failed_ = false;
  bool stopping_ = false;
  int64_t session_id_ = 0;
  std::string session_password_;
  int sessions_replaced_ = 0;
  SessionListener session_listener_;

  // Session thread only.
  zhandle_t* handle_ = nullptr;
  std::vector<std::unique_ptr<HandleContext>> contexts_;
  std::map<std::string, std::string> ephemerals_;  // path -> data
  std::map<std::string, Watch> watches_;           // path -> watch
  std::chrono::steady_clock::time_point retry_at_ = std::chrono::steady_clock::time_point::max();
  std::thread session_thread_;
  std::atomic<std::thread::id> session_thread_id_{};
};

}  // namespace percore
