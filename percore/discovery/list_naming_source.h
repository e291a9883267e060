#pragma once

#include <string>
#include <vector>

#include <percore/discovery/naming_source.h>

namespace percore {

// `list://127.0.0.1:8000,localhost:8001`: a fixed list, resolved once at
// start() and delivered before it returns.
// Owns: the list. Threads: as NamingSource.
class ListNamingSource : public NamingSource {
 public:
  // `servers` is the part after "list://".
  explicit ListNamingSource(std::string servers) : servers_(std::move(servers)) {}

  bool start(Listener listener, std::string* error) override;
  void stop() override {}

 private:
  std::string servers_;
};

}  // namespace percore
