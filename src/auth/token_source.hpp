// Credentials: one TokenSource per kind of credential, tried in the order of interface.md.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include <boost/asio/awaitable.hpp>

#include "auth/credential_settings.hpp"
#include "common/log.hpp"
#include "common/secret.hpp"
#include "http/client.hpp"

namespace tsign::auth {

inline constexpr const char* kCodeSigningScope = "https://codesigning.azure.net/.default";
inline constexpr const char* kCodeSigningResource = "https://codesigning.azure.net";

struct AccessToken {
  Secret token;
  std::chrono::system_clock::time_point expires_on;
};

class TokenSource {
 public:
  virtual ~TokenSource() = default;
  // Throws AuthError (exit 3) with what the service said when it refuses.
  virtual boost::asio::awaitable<AccessToken> get_token() = 0;
  virtual std::string name() const = 0;  // "client secret", "GitHub OIDC", ...
  // The service refused `rejected` as expired or invalid: the next get_token() must not return
  // it. A token already replaced is left alone, so that many requests refused together cause
  // one refresh, not one each. Sources that do not cache ignore it.
  virtual void invalidate(const Secret& rejected) { (void)rejected; }
};

// Whether the token has expired at `now`: its expires_on, or the `exp` claim of a JWT access
// token (RFC 7519 §4.1.4) when that is earlier.
bool expired(const AccessToken& token, std::chrono::system_clock::time_point now);

// The first applicable source of the chain, wrapped in a cache that refreshes the token before
// it expires (a run may last hours). Throws AuthError listing what each link needed when none
// applies. Every token obtained is passed to log.mask() before it is returned.
std::unique_ptr<TokenSource> make_credential_chain(const CredentialSettings& settings,
                                                   http::Client& client, Log& log);

}  // namespace tsign::auth
