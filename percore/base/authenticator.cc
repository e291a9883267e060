#include <percore/base/authenticator.h>

#include <sys/stat.h>

#include <cstdlib>
#include <fstream>

#include <openssl/crypto.h>
#include <openssl/sha.h>

namespace percore {

namespace {

constexpr size_t kMinTokenBytes = 16;
constexpr size_t kMaxTokenBytes = 4096;

// Trailing whitespace (a file's newline) is not part of the token.
std::string trimmed(std::string text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r' || text.back() == ' ' ||
                           text.back() == '\t'))
    text.pop_back();
  return text;
}

// Why `token` cannot be one, or empty. Never quotes it.
std::string token_problem(const std::string& token) {
  if (token.size() < kMinTokenBytes)
    return "the token has " + std::to_string(token.size()) + " bytes; at least " +
           std::to_string(kMinTokenBytes) + " are needed";
  if (token.size() > kMaxTokenBytes)
    return "the token has " + std::to_string(token.size()) + " bytes; at most " +
           std::to_string(kMaxTokenBytes) + " are allowed";
  for (const char c : token) {
    if (c <= ' ' || c > '~')
      return "the token holds a space, a control byte or a byte outside ASCII (it must be "
             "printable ASCII without spaces)";
  }
  return std::string();
}

}  // namespace

std::shared_ptr<TokenAuthenticator> TokenAuthenticator::FromToken(std::string token,
                                                                  std::string* error) {
  const std::string problem = token_problem(token);
  if (!problem.empty()) {
    if (error != nullptr)
      *error = problem;
    return nullptr;
  }
  return std::shared_ptr<TokenAuthenticator>(new TokenAuthenticator(std::move(token)));
}

std::shared_ptr<TokenAuthenticator> TokenAuthenticator::FromFile(const std::string& path,
                                                                 std::string* error) {
  auto fail = [&](const std::string& why) -> std::shared_ptr<TokenAuthenticator> {
    if (error != nullptr)
      *error = "token file " + path + ": " + why;
    return nullptr;
  };
  struct stat status {};
  if (::stat(path.c_str(), &status) != 0)
    return fail("cannot be read");
  if (!S_ISREG(status.st_mode))
    return fail("is not a regular file");
  if ((status.st_mode & (S_IRWXG | S_IRWXO)) != 0)
    return fail("group or others may read or write it (chmod 600 it)");
  std::ifstream file(path);
  if (!file)
    return fail("cannot be read");
  // The first line, read no further than a token can be long.
  std::string line;
  char c = 0;
  while (line.size() <= kMaxTokenBytes + 2 && file.get(c) && c != '\n')
    line.push_back(c);
  if (line.empty())
    return fail("is empty");
  std::string problem;
  auto authenticator = FromToken(trimmed(std::move(line)), &problem);
  return authenticator != nullptr ? authenticator : fail(problem);
}

std::shared_ptr<TokenAuthenticator> TokenAuthenticator::FromEnvironment(const std::string& name,
                                                                        std::string* error) {
  const char* value = std::getenv(name.c_str());
  if (value == nullptr) {
    if (error != nullptr)
      *error = "environment variable " + name + " is not set";
    return nullptr;
  }
  std::string problem;
  auto authenticator = FromToken(trimmed(value), &problem);
  if (authenticator == nullptr && error != nullptr)
    *error = "environment variable " + name + ": " + problem;
  return authenticator;
}

TokenAuthenticator::TokenAuthenticator(std::string token) : token_(std::move(token)) {
  SHA256(reinterpret_cast<const unsigned char*>(token_.data()), token_.size(), digest_);
}

int TokenAuthenticator::GenerateCredential(std::string* credential) const {
  *credential = token_;
  return 0;
}

int TokenAuthenticator::VerifyCredential(std::string_view credential,
                                         const std::string& /*client_address*/,
                                         AuthContext* context, std::string* reason) const {
  if (credential.empty()) {
    *reason = "no credential";
    return 1;
  }
  // Digests of equal length, compared in constant time: the time taken
  // tells nothing of the token's bytes or length.
  unsigned char digest[sizeof(digest_)];
  SHA256(reinterpret_cast<const unsigned char*>(credential.data()), credential.size(), digest);
  if (CRYPTO_memcmp(digest, digest_, sizeof(digest_)) != 0) {
    *reason = "wrong token";
    return 1;
  }
  context->user = "token";
  context->is_service = true;
  return 0;
}

}  // namespace percore
