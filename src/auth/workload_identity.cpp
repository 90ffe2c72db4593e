// Workload identity federation: an external OIDC token exchanged at Entra ID as a client
// assertion (RFC 7523 §2.2, client credentials grant), either read from
// AZURE_FEDERATED_TOKEN_FILE (Kubernetes projected token, re-read for every request because it
// rotates) or fetched from the GitHub Actions OIDC provider (docs/protocol.md §1; actions/toolkit
// core.getIDToken).
#include <boost/json.hpp>
#include <boost/url/parse.hpp>

#include "auth/auth_internal.hpp"
#include "common/error.hpp"
#include "common/text.hpp"
#include "platform/platform.hpp"

// GCC 12 at -O2 reports a false -Wmismatched-new-delete where it inlines a coroutine of this file
// into another: the pair it names is asio's own awaitable frame operator new / delete, which
// match. Silenced for this file only.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

namespace tsign::auth {

namespace json = boost::json;

std::string federated_claims_hint(const Secret& jwt) {
  const std::string& t = jwt.reveal();
  const auto first = t.find('.');
  const auto second = first == std::string::npos ? first : t.find('.', first + 1);
  if (second == std::string::npos) return {};
  auto payload = base64url_decode(std::string_view(t).substr(first + 1, second - first - 1));
  if (!payload) return {};
  boost::system::error_code ec;
  json::value v = json::parse(to_string(*payload), ec);
  if (ec || !v.is_object()) return {};
  auto claim = [&](const char* k) -> std::string {
    const auto* c = v.as_object().if_contains(k);
    return c && c->is_string() ? std::string(c->as_string()) : std::string("?");
  };
  return "the GitHub OIDC token's issuer '" + claim("iss") + "', subject '" + claim("sub") +
         "' and audience '" + claim("aud") +
         "' must be exactly the federated credential's (the subject is case-sensitive)";
}

namespace {

constexpr const char* kAssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

std::vector<std::pair<std::string, std::string>> federated_form(const std::string& client_id,
                                                                const Secret& assertion) {
  return {{"client_id", client_id},
          {"scope", kCodeSigningScope},
          {"client_assertion_type", kAssertionType},
          {"client_assertion", assertion.reveal()},
          {"grant_type", "client_credentials"}};
}

class FederatedFileSource final : public TokenSource {
 public:
  FederatedFileSource(const ResolvedSettings& s, std::string file, http::Client& client, Log& log,
                      NowFn now)
      : client_(client),
        log_(log),
        now_(std::move(now)),
        client_id_(s.client_id),
        file_(std::move(file)),
        url_(entra_token_url(s.authority, s.tenant_id)),
        who_("federated token of AZURE_FEDERATED_TOKEN_FILE " + file_ + " for client " +
             s.client_id + " in tenant " + s.tenant_id) {}

  boost::asio::awaitable<AccessToken> get_token() override {
    Secret assertion = read_assertion();
    const auto form = federated_form(client_id_, assertion);
    co_return co_await request_entra_token(client_, url_, form, who_, now_());
  }
  std::string name() const override { return "workload identity (AZURE_FEDERATED_TOKEN_FILE)"; }

 private:
  // Re-read every time: the platform rotates the file and an old token is rejected.
  Secret read_assertion() const {
    std::string text;
    try {
      platform::ReadFile f(platform::from_utf8(file_));
      if (f.size() > 1024 * 1024)
        throw AuthError("AZURE_FEDERATED_TOKEN_FILE " + file_ + " is too large for a token");
      text = to_string(f.read_at(0, static_cast<std::size_t>(f.size())));
    } catch (const FileError& e) {
      throw AuthError(std::string("AZURE_FEDERATED_TOKEN_FILE: ") + e.what());
    }
    Secret s(std::string(trim(text)));
    log_.mask(s);
    if (s.empty()) throw AuthError("AZURE_FEDERATED_TOKEN_FILE " + file_ + " is empty");
    return s;
  }

  http::Client& client_;
  Log& log_;
  NowFn now_;
  std::string client_id_, file_, url_, who_;
};

class GitHubOidcSource final : public TokenSource {
 public:
  GitHubOidcSource(const ResolvedSettings& s, std::string request_url, Secret request_token,
                   http::Client& client, Log& log, NowFn now)
      : client_(client),
        log_(log),
        now_(std::move(now)),
        client_id_(s.client_id),
        request_token_(std::move(request_token)),
        oidc_url_(github_oidc_url(request_url, github_oidc_audience(s.authority))),
        url_(entra_token_url(s.authority, s.tenant_id)),
        who_("GitHub OIDC token for client " + s.client_id + " in tenant " + s.tenant_id +
             " (check the federated credential's issuer, subject and audience)") {}

  boost::asio::awaitable<AccessToken> get_token() override {
    // A fresh GitHub token for every Entra request: they live about 5 minutes. If Entra still
    // finds it outside its validity (AADSTS700024, e.g. clock skew or a slow queue), one more
    // fresh token usually passes.
    for (int attempt = 0;; ++attempt) {
      Secret jwt = co_await fetch_github_token();
      const auto form = federated_form(client_id_, jwt);
      try {
        co_return co_await request_entra_token(client_, url_, form, who_, now_());
      } catch (const EntraRefused& e) {
        bool expired = e.description.find("AADSTS700024") != std::string::npos ||
                       e.code.find("AADSTS700024") != std::string::npos;
        if (expired && attempt == 0) {
          log_.debug(
              "Entra ID found the GitHub OIDC token expired (AADSTS700024); fetching a new one");
          continue;
        }
        // No federated credential matched (AADSTS700213, AADSTS7002138, AADSTS70021): show what
        // the token claims, so the credential can be set to match it.
        if (!expired)
          if (std::string hint = federated_claims_hint(jwt); !hint.empty())
            throw EntraRefused(std::string(e.what()) + "; " + hint, e.code, e.description);
        throw;
      }
    }
  }
  std::string name() const override { return "workload identity (GitHub OIDC)"; }

 private:
  http::Request id_token_request() const {
    http::Request req;
    req.url = oidc_url_;
    req.headers = {{"Authorization", "Bearer " + request_token_.reveal()},
                   {"Accept", "application/json"}};
    // The client's retry policy, as actions/toolkit retries this call: it often fails briefly.
    req.retry = true;
    // An ID token answer cut short is asked for again, like a failed request.
    req.usable = usable_token_answer;
    return req;
  }

  boost::asio::awaitable<Secret> fetch_github_token() {
    http::Request req = id_token_request();
    std::string host = "the GitHub OIDC provider";
    if (auto r = boost::urls::parse_uri(oidc_url_)) host += " (" + std::string(r->host()) + ")";
    http::Response res;
    try {
      res = co_await client_.send(std::move(req));
    } catch (const http::TransportError& e) {
      throw AuthError("cannot reach " + host + ": " + e.what());
    }
    if (res.status != 200)
      throw AuthError(host + " refused the ID token request (HTTP " + std::to_string(res.status) +
                      "); the job needs `permissions: id-token: write`");
    Secret jwt = parse_github_oidc_answer(res.body, host);
    // Before anything else can print it.
    log_.mask(jwt);
    co_return jwt;
  }

  http::Client& client_;
  Log& log_;
  NowFn now_;
  std::string client_id_;
  Secret request_token_;
  std::string oidc_url_, url_, who_;
};

}  // namespace

Secret parse_github_oidc_answer(std::string_view body, const std::string& host) {
  boost::system::error_code ec;
  json::value v = json::parse(body, ec);
  const json::value* value = (!ec && v.is_object()) ? v.as_object().if_contains("value") : nullptr;
  if (!value || !value->is_string() || value->as_string().empty())
    throw AuthError(host + " answered without an ID token (no \"value\")");
  return Secret(std::string(value->as_string()));
}

std::unique_ptr<TokenSource> make_federated_file_source(const ResolvedSettings& s,
                                                        std::string token_file,
                                                        http::Client& client, Log& log, NowFn now) {
  return std::make_unique<FederatedFileSource>(s, std::move(token_file), client, log,
                                               std::move(now));
}

std::unique_ptr<TokenSource> make_github_oidc_source(const ResolvedSettings& s,
                                                     std::string request_url, Secret request_token,
                                                     http::Client& client, Log& log, NowFn now) {
  log.mask(request_token);
  return std::make_unique<GitHubOidcSource>(s, std::move(request_url), std::move(request_token),
                                            client, log, std::move(now));
}

// Its row in credential_table.hpp: a federated token file first, else GitHub's OIDC provider,
// with both IDs.
LinkOutcome workload_identity_credential(const LinkInputs& in) {
  const ResolvedSettings& s = in.settings;
  const bool ids = !s.tenant_id.empty() && !s.client_id.empty();
  const bool file = has_var(in.env, "AZURE_FEDERATED_TOKEN_FILE");
  const bool github = has_var(in.env, "ACTIONS_ID_TOKEN_REQUEST_URL") &&
                      has_var(in.env, "ACTIONS_ID_TOKEN_REQUEST_TOKEN");
  if (ids && file)
    return {make_federated_file_source(s, *read_var(in.env, "AZURE_FEDERATED_TOKEN_FILE"),
                                       in.client, in.log, in.now),
            {}};
  if (ids && github)
    return {make_github_oidc_source(s, *read_var(in.env, "ACTIONS_ID_TOKEN_REQUEST_URL"),
                                    Secret(*read_var(in.env, "ACTIONS_ID_TOKEN_REQUEST_TOKEN")),
                                    in.client, in.log, in.now),
            {}};
  return {nullptr, missing_list({{"AZURE_TENANT_ID", !s.tenant_id.empty()},
                                 {"AZURE_CLIENT_ID", !s.client_id.empty()},
                                 {"AZURE_FEDERATED_TOKEN_FILE or ACTIONS_ID_TOKEN_REQUEST_URL + "
                                  "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
                                  file || github}})};
}

}  // namespace tsign::auth
