// Managed identity: the Azure Instance Metadata Service token endpoint
// (GET /metadata/identity/oauth2/token, api-version 2018-02-01, header "Metadata: true") and the
// App Service / Functions / Container Apps identity endpoint (IDENTITY_ENDPOINT with header
// X-IDENTITY-HEADER, api-version 2019-08-01), as docs/protocol.md §2 and the Azure SDKs use them.
#include <boost/json.hpp>
#include <boost/url/parse.hpp>
#include <boost/url/url.hpp>

#include "auth/auth_internal.hpp"
#include "common/error.hpp"

namespace tsign::auth {

namespace json = boost::json;
namespace urls = boost::urls;

std::string managed_identity_refusal(int status, std::string_view body) {
  std::string out = "HTTP " + std::to_string(status);
  boost::system::error_code ec;
  json::value v = json::parse(body, ec);
  if (!ec && v.is_object()) {
    const auto& o = v.as_object();
    for (const char* key : {"error", "error_description", "message"}) {
      if (auto* f = o.if_contains(key); f && f->is_string())
        out += ": " + std::string(f->as_string());
    }
  }
  return out;
}

namespace {

// What a refusal said, without anything that could be a token.
std::string refusal_text(const http::Response& res) {
  return managed_identity_refusal(res.status, res.body);
}

std::string with_query(const std::string& base, const std::string& api_version,
                       const std::string& client_id) {
  auto r = urls::parse_absolute_uri(base);
  if (!r) throw InputError("managed identity endpoint '" + base + "' is not a URL");
  urls::url u(*r);
  u.params().set("api-version", api_version);
  u.params().set("resource", kCodeSigningResource);
  if (!client_id.empty()) u.params().set("client_id", client_id);
  return std::string(u.buffer());
}

class AppServiceIdentitySource final : public TokenSource {
 public:
  AppServiceIdentitySource(std::string endpoint, Secret header, std::string client_id,
                           http::Client& client, NowFn now)
      : client_(client),
        now_(std::move(now)),
        url_(with_query(endpoint, "2019-08-01", client_id)),
        header_(std::move(header)) {}

  boost::asio::awaitable<AccessToken> get_token() override {
    http::Request req;
    req.url = url_;
    req.headers = {{"X-IDENTITY-HEADER", header_.reveal()}, {"Accept", "application/json"}};
    req.usable = usable_token_answer;
    http::Response res;
    try {
      res = co_await client_.send(std::move(req));
    } catch (const http::TransportError& e) {
      throw AuthError(
          std::string("cannot reach the managed identity endpoint (IDENTITY_ENDPOINT): ") +
          e.what());
    }
    if (res.status != 200)
      throw AuthError("the managed identity endpoint (IDENTITY_ENDPOINT) refused a token: " +
                      refusal_text(res));
    co_return parse_token_response(res.body, now_(), "the managed identity endpoint");
  }
  std::string name() const override { return "managed identity (IDENTITY_ENDPOINT)"; }

 private:
  http::Client& client_;
  NowFn now_;
  std::string url_;
  Secret header_;
};

// Tentative until its first token: off Azure, 169.254.169.254 does not answer (or belongs to
// another cloud's metadata service), and the chain must move on to the Azure CLI quickly.
class ImdsSource final : public TokenSource {
 public:
  ImdsSource(std::string base_url, std::string client_id, http::Client& client, NowFn now)
      : client_(client),
        now_(std::move(now)),
        url_(with_query(base_url + "/metadata/identity/oauth2/token", "2018-02-01", client_id)) {}

  boost::asio::awaitable<AccessToken> get_token() override {
    if (!proven_) co_await probe();
    http::Request req;
    req.url = url_;
    req.headers = {{"Metadata", "true"}, {"Accept", "application/json"}};
    req.usable = usable_token_answer;
    http::Response res;
    try {
      res = co_await client_.send(std::move(req));
    } catch (const http::TransportError& e) {
      fail(std::string("the instance metadata service did not answer: ") + e.what());
    }
    if (res.status != 200)
      fail("the instance metadata service has no token for this machine: " + refusal_text(res));
    try {
      AccessToken t = parse_token_response(res.body, now_(), "the instance metadata service");
      proven_ = true;
      co_return t;
    } catch (const AuthError& e) {
      fail(e.what());
    }
  }
  std::string name() const override { return "managed identity (instance metadata service)"; }

 private:
  // A request without the Metadata header, which IMDS answers at once with 400: a short timeout
  // and no retry, so a machine without IMDS costs at most ~1.5 s once per run.
  boost::asio::awaitable<void> probe() {
    http::Request req;
    req.url = url_;
    req.timeout = std::chrono::milliseconds(1500);
    req.retry = false;
    try {
      co_await client_.send(std::move(req));
    } catch (const http::TransportError& e) {
      throw Unavailable(std::string("no instance metadata service at 169.254.169.254 (") +
                        e.what() + ")");
    }
  }
  [[noreturn]] void fail(const std::string& why) const {
    if (!proven_) throw Unavailable(why);
    throw AuthError("managed identity: " + why);
  }

  http::Client& client_;
  NowFn now_;
  std::string url_;
  bool proven_ = false;
};

}  // namespace

std::unique_ptr<TokenSource> make_app_service_identity_source(std::string endpoint,
                                                              Secret identity_header,
                                                              std::string client_id,
                                                              http::Client& client, NowFn now) {
  return std::make_unique<AppServiceIdentitySource>(std::move(endpoint), std::move(identity_header),
                                                    std::move(client_id), client, std::move(now));
}

std::unique_ptr<TokenSource> make_imds_source(std::string base_url, std::string client_id,
                                              http::Client& client, NowFn now) {
  return std::make_unique<ImdsSource>(std::move(base_url), std::move(client_id), client,
                                      std::move(now));
}

// Its row in credential_table.hpp. IMDS is always probed when the chain gets this far (a
// self-hosted runner on an Azure VM has no variable saying so); the probe is one request with a
// 1.5 s timeout and no retry, so a runner elsewhere loses at most that, once.
LinkOutcome managed_identity_credential(const LinkInputs& in) {
  if (has_var(in.env, "IDENTITY_ENDPOINT") && has_var(in.env, "IDENTITY_HEADER"))
    return {make_app_service_identity_source(*read_var(in.env, "IDENTITY_ENDPOINT"),
                                             Secret(*read_var(in.env, "IDENTITY_HEADER")),
                                             in.settings.client_id, in.client, in.now),
            {}};
  return {make_imds_source("http://169.254.169.254", in.settings.client_id, in.client, in.now), {}};
}

}  // namespace tsign::auth
