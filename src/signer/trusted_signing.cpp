// The Trusted Signing (Artifact Signing) signer: the sign / poll long-running operation (Azure
// REST API guidelines, "Long-running operations") over http::Client, with the bearer token of an
// auth::TokenSource, and the choice of api-version per run (docs/usage.md, "Service API
// versions"). What it sends and how it reads the answers is trusted_signing_protocol.cpp.
#include "signer/trusted_signing.hpp"

#include <algorithm>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json.hpp>

#include "common/error.hpp"
#include "platform/env.hpp"
#include "platform/platform.hpp"

namespace tsign::signer {

namespace asio = boost::asio;
namespace json = boost::json;

namespace {

// Polls per signature. With the pacing below that is well over ten minutes; the run's deadline
// (enforced by the client) normally ends a stuck operation first.
constexpr int kMaxPolls = 1000;

class TrustedSigningSigner final : public Signer {
 public:
  TrustedSigningSigner(const TrustedSigningSettings& s, http::Client& client,
                       auth::TokenSource& tokens, Log& log)
      : settings_(s), client_(client), tokens_(tokens), log_(log), settled_(s.api_version) {
    prefix_ = profile_url(s);
    region_ = endpoint_region(s.endpoint);
    if (s.api_version)
      log_.debug("Trusted Signing api-version " + std::string(api_version_name(*s.api_version)) +
                 " (pinned by the api-version option)");
  }

  asio::awaitable<SignResult> sign(Bytes digest, DigestAlg alg) override {
    if (digest.size() != digest_size(alg))
      throw FileError("internal error: a " + std::string(digest_name(alg)) + " digest of " +
                      std::to_string(digest.size()) + " bytes");
    json::object req{{"signatureAlgorithm", signature_algorithm(alg)},
                     {"digest", base64_encode(digest)}};
    auto [res, version] = co_await submit(json::serialize(req));
    SignStatus st = parse_sign_status(res.body);

    std::string poll_url;
    if (auto loc = res.header("operation-location"); loc && same_origin(*loc, settings_.endpoint)) {
      poll_url = *loc;
    } else {
      if (loc) log_.debug("ignoring Operation-Location on another host than the endpoint");
      if (st.operation_id.empty() && !status_succeeded(st.status))
        throw FileError("the signing service sent a malformed answer (no operationId)");
      poll_url = signer::poll_url(prefix_, st.operation_id, version);
    }

    for (int i = 0; !status_succeeded(st.status); ++i) {
      if (status_failed(st.status))
        throw FileError("the signing service reported " + st.status + " for operation " +
                        st.operation_id + (st.error.empty() ? "" : ": " + st.error));
      if (i >= kMaxPolls)
        throw FileError("the signing operation " + st.operation_id + " was still " + st.status +
                        " after " + std::to_string(kMaxPolls) + " polls");
      // Retry-After when the service gives one, else start fast as jsign does.
      co_await wait(
          poll_retry_after(res).value_or(std::chrono::milliseconds(std::min(1000, 50 + 10 * i))));
      res = co_await send("GET", poll_url, {});
      check(res, Request::poll, version);
      std::string id = st.operation_id;
      st = parse_sign_status(res.body);
      if (st.operation_id.empty()) st.operation_id = id;
    }
    co_return result(st);
  }

  // The certificate-chain endpoint (free), in the run's api-version: when none is settled yet, the
  // GA version, and the preview once if that is refused for its version (the same rule as the
  // sign request's, and what works here settles the run's version: one contract per account).
  asio::awaitable<std::vector<X509Ptr>> certificate_chain() override {
    while (!settled_ && probing_) co_await wait_for_probe();
    const ApiVersion first = settled_.value_or(ApiVersion::ga_2024_06_15);
    http::Response res = co_await send_certchain(first);
    ApiVersion used = first;
    if (!settled_ && !accepted(res) &&
        refused_for_version(res.status, res.body, res.header("x-ms-error-code").value_or(""))) {
      used = ApiVersion::preview_2022_06_15;
      log_.debug("Trusted Signing api-version " + std::string(api_version_name(first)) +
                 " refused for the certificate chain (" + answer_summary(res) + "); trying " +
                 std::string(api_version_name(used)));
      res = co_await send_certchain(used);
    }
    if (!accepted(res)) check(res, Request::certchain, used);
    if (!settled_) {
      settled_ = used;
      log_.debug("Trusted Signing api-version " + std::string(api_version_name(used)) +
                 ": accepted by the service, used for the rest of the run");
    }
    co_return decode_certificate_chain(res.body);
  }

  std::string describe() const override {
    return "Trusted Signing " + region_ + "/" + settings_.account + "/" + settings_.profile;
  }

 private:
  // The sign request in the run's api-version, checked; returns the answer and the version that
  // got it. Pinned: that version, always. Automatic: until an answer has settled which version
  // the service speaks, ONE sign request at a time probes it and the others wait for its answer
  // (only the submission: a probe's polls run alongside everything else). So with 64 files in
  // flight a service that refuses the GA version still sees exactly one refused request and one
  // fallback per run, and no file fails because of the refusal. A probe that fails for another
  // reason (403, 5xx after retries, the deadline) settles nothing: the next request probes.
  asio::awaitable<std::pair<http::Response, ApiVersion>> submit(std::string body) {
    while (!settled_ && probing_) co_await wait_for_probe();
    if (settled_) {
      ApiVersion v = *settled_;
      http::Response res = co_await send("POST", sign_url(prefix_, v), body);
      check(res, Request::sign, v);
      co_return std::pair{std::move(res), v};
    }

    probing_ = true;
    struct ProbeDone {  // whatever happens below, the waiting requests go on
      TrustedSigningSigner& s;
      ~ProbeDone() {
        s.probing_ = false;
        if (s.gate_) s.gate_->cancel();
      }
    } done{*this};
    constexpr ApiVersion preferred = ApiVersion::ga_2024_06_15;
    constexpr ApiVersion fallback = ApiVersion::preview_2022_06_15;
    const std::string preferred_name(api_version_name(preferred));
    const std::string fallback_name(api_version_name(fallback));

    http::Response res = co_await send("POST", sign_url(prefix_, preferred), body);
    if (accepted(res)) {
      settled_ = preferred;
      log_.debug("Trusted Signing api-version " + preferred_name +
                 ": accepted by the service, used for the rest of the run");
      co_return std::pair{std::move(res), preferred};
    }
    if (!refused_for_version(res.status, res.body, res.header("x-ms-error-code").value_or(""))) {
      check(res, Request::sign, preferred);  // not about the version: the usual error
      co_return std::pair{std::move(res), preferred};
    }
    const std::string refusal = answer_summary(res);
    log_.debug("Trusted Signing api-version " + preferred_name + " refused (" + refusal +
               "); trying " + fallback_name + " once");
    http::Response again = co_await send("POST", sign_url(prefix_, fallback), body);
    if (accepted(again)) {
      settled_ = fallback;
      log_.info("the Trusted Signing service refused api-version " + preferred_name + " (" +
                refusal + ") and accepted " + fallback_name + ": using " + fallback_name +
                " for the rest of the run (the api-version option pins a version)");
      co_return std::pair{std::move(again), fallback};
    }
    // Both refused: the first refusal is the error, and no other request falls back again.
    settled_ = preferred;
    check(res, Request::sign, preferred,
          "; api-version " + fallback_name + " was refused too (" + answer_summary(again) + ")");
    co_return std::pair{std::move(res), preferred};
  }

  asio::awaitable<void> wait_for_probe() {
    if (!gate_)
      gate_.emplace(co_await asio::this_coro::executor, asio::steady_timer::time_point::max());
    // Woken by cancel() when the probe is done: that error code is the wake-up, not a failure.
    co_await gate_->async_wait(asio::as_tuple(asio::use_awaitable));
  }

  static bool accepted(const http::Response& res) { return res.status == 200 || res.status == 202; }

  // "HTTP 400 UnsupportedApiVersion: ..." for the log and messages.
  static std::string answer_summary(const http::Response& res) {
    std::string said = service_error_text(res.body, res.header("x-ms-error-code").value_or(""));
    return "HTTP " + std::to_string(res.status) + (said.empty() ? "" : " " + said);
  }

  asio::awaitable<void> wait(std::chrono::milliseconds d) {
    // Never sleep past the run's deadline: fail now instead of after a pointless wait.
    if (auto dl = client_.options().deadline; dl && http::Clock::now() + d >= *dl)
      throw DeadlineError("the deadline passed while the signing service was still working");
    asio::steady_timer t(co_await asio::this_coro::executor, d);
    co_await t.async_wait(asio::use_awaitable);
  }

  asio::awaitable<http::Response> send_certchain(ApiVersion v) {
    co_return co_await send("GET", certchain_url(prefix_, v), {}, "application/pkcs7-mime");
  }

  asio::awaitable<http::Response> send(const char* method, std::string url, std::string body,
                                       const char* accept = "application/json") {
    // A 401 for an expired token gets one more round with a new token: a run may outlast many
    // tokens, and a token may expire between being taken and being checked.
    for (int round = 1;; ++round) {
      std::optional<auth::AccessToken> sent;  // the token of the last attempt
      http::Request req;
      req.method = method;
      req.url = url;
      req.headers = {{"Accept", accept}};
      if (!body.empty()) req.headers.emplace_back("Content-Type", "application/json");
      if (!settings_.correlation_id.empty())
        req.headers.emplace_back("x-correlation-id", settings_.correlation_id);
      req.body = body;
      // From the cache at every attempt, not once per request: a retry after a 429, a 503 or a
      // wait for a connection must carry a token that is valid when it is sent.
      req.authorize = [this, &sent]() -> asio::awaitable<http::Authorization> {
        auth::AccessToken t = co_await tokens_.get_token();
        http::Authorization a;
        a.headers = {{"Authorization", "Bearer " + t.token.reveal()}};
        a.valid_until = http::Clock::now() + std::chrono::duration_cast<http::Clock::duration>(
                                                 t.expires_on - std::chrono::system_clock::now());
        sent = std::move(t);
        co_return a;
      };
      // A poll asks again after an answer cut short: the signature is paid for already, and
      // the next poll returns it. A sign POST is never re-sent that way (the client's rule).
      const bool json_answer = std::string_view(accept) == "application/json";
      req.usable = [json_answer](const http::Response& r) {
        if (r.status != 200 && r.status != 202) return true;
        if (!json_answer) return is_certificate_chain(r.body);
        boost::system::error_code ec;
        json::value v = json::parse(r.body, ec);
        return !ec && v.is_object();
      };
      http::Response res = co_await client_.send(std::move(req));
      if (round == 1 && res.status == 401 && sent &&
          (auth::expired(*sent, std::chrono::system_clock::now()) || says_token_invalid(res))) {
        log_.debug(
            "the Trusted Signing service refused an expired or invalid access token; "
            "sending again with a new one");
        tokens_.invalidate(sent->token);
        continue;
      }
      co_return res;
    }
  }

  std::string where() const {
    return "account '" + settings_.account + "', certificate profile '" + settings_.profile +
           "' at " + settings_.endpoint;
  }

  // What an answer answered, for the rules below and the messages.
  enum class Request { sign, poll, certchain };

  // Throws the error an answer means unless it is 200/202; `also` is added to what it says.
  // A sign or certificate-chain request refused for its version or its names is a configuration
  // error of the run; a poll's refusal is the file's.
  void check(const http::Response& res, Request request, ApiVersion version,
             const std::string& also = {}) const {
    if (res.status == 200 || res.status == 202) return;
    const bool configuring = request != Request::poll;
    std::string detail = service_error_text(res.body, res.header("x-ms-error-code").value_or(""));
    std::string said = (detail.empty() ? "" : " (the service said: " + detail + ")") + also;
    // A pinned version may be what is refused: say so, and how to let tsign choose.
    const std::string api(api_version_name(version));
    const std::string pinned =
        settings_.api_version
            ? "; api-version " + api + " was pinned by the api-version option (empty: automatic)"
            : "";
    const std::string for_what =
        request == Request::certchain ? " for the certificate chain of " : " for ";
    if (configuring && res.status == 400 &&
        refused_for_version(res.status, res.body, res.header("x-ms-error-code").value_or("")))
      // Every file would fail the same way: a configuration error of the run (exit 2).
      throw InputError("the Trusted Signing service does not accept api-version " + api + for_what +
                       where() + said + pinned);
    if (res.status == 401 && says_token_invalid(res))
      // Refused although just obtained (send() retried with a new one): not a missing role.
      throw AuthError(
          "the Trusted Signing service refused a newly obtained access token from the " +
          tokens_.name() + " credential as expired or invalid (HTTP 401)" + for_what + where() +
          said +
          ". Check the clock of this machine (tokens are checked against the service's time) and "
          "that the credential gets its tokens for https://codesigning.azure.net.");
    if (res.status == 401 || res.status == 403)
      throw AuthError(
          "the Trusted Signing service refused the identity (HTTP " + std::to_string(res.status) +
          ")" + for_what + where() + said +
          ". Usual causes: the identity lacks the \"Artifact Signing Certificate Profile "
          "Signer\" role (formerly \"Trusted Signing Certificate Profile Signer\") on the account "
          "or the profile; or the endpoint's region is not the account's region" +
          (configuring ? pinned : "") + ".");
    if (res.status == 404 && configuring)
      // Every file would fail the same way: a configuration error of the run (exit 2).
      throw InputError("the Trusted Signing service does not know " + where() + said +
                       "; check signing-account-name, certificate-profile-name and endpoint" +
                       pinned);
    const char* to = request == Request::sign   ? " to the sign request"
                     : request == Request::poll ? " to a status poll"
                                                : " to the certificate-chain request";
    throw FileError("the Trusted Signing service answered HTTP " + std::to_string(res.status) + to +
                    " for " + where() + said);
  }

  SignResult result(const SignStatus& st) const {
    if (!st.signature || st.signature->empty())
      throw FileError("the signing service reported Succeeded without a signature");
    if (!st.signing_certificate || st.signing_certificate->empty())
      throw FileError("the signing service reported Succeeded without a signing certificate");
    auto sig = base64_decode(*st.signature);
    if (!sig || sig->empty())
      throw FileError("the signing service sent a malformed answer (signature is not base64)");
    return SignResult{std::move(*sig), decode_certificate_chain(*st.signing_certificate)};
  }

  TrustedSigningSettings settings_;
  http::Client& client_;
  auth::TokenSource& tokens_;
  Log& log_;
  std::string prefix_, region_;
  // The run's api-version once known (from the start when pinned), and the probe finding it out.
  // Every coroutine touching them runs on the client's one io thread (http::Client's contract).
  std::optional<ApiVersion> settled_;
  bool probing_ = false;
  std::optional<asio::steady_timer> gate_;  // requests waiting for the probe wait on it
};

}  // namespace

std::unique_ptr<Signer> make_trusted_signing_signer(const TrustedSigningSettings& settings,
                                                    http::Client& client, auth::TokenSource& tokens,
                                                    Log& log) {
  check_endpoint(settings.endpoint, env::get("TSIGN_ALLOWED_HOSTS"));
  if (settings.account.empty())
    throw InputError("signing-account-name is required for the Trusted Signing service");
  if (settings.profile.empty())
    throw InputError("certificate-profile-name is required for the Trusted Signing service");
  return std::make_unique<TrustedSigningSigner>(settings, client, tokens, log);
}

}  // namespace tsign::signer
