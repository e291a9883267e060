#include "test/support/zookeeper_ensemble.h"

#include <thread>
#include <utility>

#include "test/support/slack.h"

namespace percore::testing {
namespace {

using std::chrono::milliseconds;
using std::chrono::steady_clock;

// Three JVMs start side by side and then elect; slower than one alone.
constexpr milliseconds kStartTimeout{60000};
constexpr milliseconds kPollInterval{50};
constexpr int kStartAttempts = 3;

void set_error(std::string* error, const std::string& text) {
  if (error != nullptr)
    *error = text;
}

}  // namespace

std::unique_ptr<ZooKeeperEnsemble> ZooKeeperEnsemble::start(std::string* error, size_t members) {
  return start_with(members, {}, error);
}

std::unique_ptr<ZooKeeperEnsemble> ZooKeeperEnsemble::start_on(
    const std::vector<ZooKeeperPlacement>& placements, std::string* error) {
  return start_with(placements.size(), placements, error);
}

std::unique_ptr<ZooKeeperEnsemble> ZooKeeperEnsemble::start_with(
    size_t members, const std::vector<ZooKeeperPlacement>& placements, std::string* error) {
  std::string last_error;
  for (int attempt = 0; attempt < kStartAttempts; ++attempt) {
    std::vector<std::unique_ptr<ZooKeeperServer>> servers =
        ZooKeeperServer::create_ensemble(members, placements, &last_error);
    if (servers.empty())
      break;
    std::unique_ptr<ZooKeeperEnsemble> ensemble(new ZooKeeperEnsemble(std::move(servers)));
    // All members start before any is waited for: none serves without a
    // quorum.
    bool launched = true;
    for (const std::unique_ptr<ZooKeeperServer>& member : ensemble->members_)
      launched = launched && member->launch(&last_error);
    if (launched && ensemble->wait_serving(scaled(kStartTimeout), &last_error))
      return ensemble;
    // A free port may be taken by someone else before a member binds it;
    // that member exits at once, and the ensemble is tried on other ports.
    bool exited_early = false;
    for (const std::unique_ptr<ZooKeeperServer>& member : ensemble->members_)
      exited_early = exited_early || !member->running();
    ensemble.reset();  // Stops what is left and removes the directories.
    if (!launched || !exited_early)
      break;
  }
  set_error(error, last_error);
  return nullptr;
}

ZooKeeperEnsemble::~ZooKeeperEnsemble() = default;  // Each member stops its JVM by pid.

std::string ZooKeeperEnsemble::hosts() const {
  std::string hosts;
  // Appended piece by piece: GCC 12 at -O3 warns (-Wrestrict, wrongly) on
  // `const char* + std::string&&`.
  for (const std::unique_ptr<ZooKeeperServer>& member : members_) {
    if (!hosts.empty())
      hosts += ',';
    hosts += member->hosts();
  }
  return hosts;
}

std::optional<size_t> ZooKeeperEnsemble::leader() const {
  for (size_t index = 0; index < members_.size(); ++index) {
    if (members_[index]->running() && members_[index]->mode() == "leader")
      return index;
  }
  return std::nullopt;
}

bool ZooKeeperEnsemble::wait_serving(milliseconds timeout, std::string* error) {
  const auto deadline = steady_clock::now() + timeout;
  for (;;) {
    size_t running = 0;
    size_t serving = 0;
    size_t leaders = 0;
    for (size_t index = 0; index < members_.size(); ++index) {
      ZooKeeperServer& member = *members_[index];
      std::string how;
      if (member.exited(&how)) {
        set_error(error, "ZooKeeper ensemble member " + std::to_string(index) + " on " +
                             member.hosts() + " exited (" + how + ")\n" + report(40));
        return false;
      }
      if (!member.running())
        continue;
      ++running;
      const std::string mode = member.ready_mode();
      serving += mode.empty() ? 0 : 1;
      leaders += mode == "leader" ? 1 : 0;
    }
    // Waiting longer cannot help.
    if (2 * running <= members_.size()) {
      set_error(error, "only " + std::to_string(running) + " of " +
                           std::to_string(members_.size()) +
                           " ZooKeeper ensemble members run: no quorum\n" + report(10));
      return false;
    }
    if (leaders == 1 && serving == running)
      return true;
    if (steady_clock::now() >= deadline)
      break;
    std::this_thread::sleep_for(kPollInterval);
  }
  set_error(error, "ZooKeeper ensemble " + hosts() + " did not serve within " +
                       std::to_string(timeout.count()) + " ms\n" + report(40));
  return false;
}

std::string ZooKeeperEnsemble::report(size_t lines) const {
  std::string text;
  for (size_t index = 0; index < members_.size(); ++index) {
    const ZooKeeperServer& member = *members_[index];
    const std::string mode = member.running() ? member.mode() : "";
    text += "member " + std::to_string(index) + " on " + member.hosts() + ", pid " +
            std::to_string(member.pid());
    if (!member.running())
      text += ", not running";
    else if (mode.empty())
      text += ", mode (not serving)";
    else
      text += ", mode " + mode;
    text += "; zookeeper.out ends with:\n" + member.log_tail(lines);
  }
  return text;
}

}  // namespace percore::testing
