#include "discovery/naming_source.h"

#include "discovery/list_naming_source.h"

namespace percore {

std::unique_ptr<NamingSource> make_naming_source(const std::string& target, std::string* error) {
  const size_t scheme_end = target.find("://");
  if (scheme_end == std::string::npos)
    return std::make_unique<ListNamingSource>(target);
  const std::string scheme = target.substr(0, scheme_end);
  const std::string rest = target.substr(scheme_end + 3);
  if (scheme == "list")
    return std::make_unique<ListNamingSource>(rest);
  if (error != nullptr) {
    *error = "unsupported naming scheme '" + scheme + "' in " + target + " (supported: list://)";
  }
  return nullptr;
}

}  // namespace percore
