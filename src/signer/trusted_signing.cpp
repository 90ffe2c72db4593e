// Trusted Signing (Artifact Signing) data plane: the sign / poll long-running operation (Azure
// REST API guidelines, "Long-running operations") in the GA api-version 2024-06-15 (the OpenAPI
// description in azure-rest-api-specs, specification/artifactsigning/data-plane) and in
// 2022-06-15-preview as docs/protocol.md §3 describes it from jsign and the Microsoft client
// library; the wrapped answer shape of 2023-06-15-preview is understood too. Which version a run
// speaks is the README's "Service API versions". The certificate chain arrives as a PKCS#7
// certs-only SignedData (RFC 2315 §9), base64-encoded twice.
#include "signer/trusted_signing.hpp"

#include <algorithm>
#include <cctype>

#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json.hpp>
#include <boost/url/encode.hpp>
#include <boost/url/parse.hpp>
#include <boost/url/rfc/unreserved_chars.hpp>

#include "common/error.hpp"
#include "platform/env.hpp"
#include "platform/platform.hpp"

namespace tsign::signer {

namespace asio = boost::asio;
namespace json = boost::json;
namespace urls = boost::urls;

namespace {

constexpr std::string_view kServiceSuffix = ".codesigning.azure.net";
// Polls per signature. With the pacing below that is well over ten minutes; the run's deadline
// (enforced by the client) normally ends a stuck operation first.
constexpr int kMaxPolls = 1000;
constexpr auto npos = std::string::npos;

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

std::string trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return std::string(s);
}

}  // namespace

// ---- API versions and URLs ---------------------------------------------------------------------

std::string_view api_version_name(ApiVersion v) {
  return v == ApiVersion::ga_2024_06_15 ? "2024-06-15" : "2022-06-15-preview";
}

std::optional<ApiVersion> parse_api_version(std::string_view name) {
  std::string n = lower(trim(name));
  for (auto v : {ApiVersion::ga_2024_06_15, ApiVersion::preview_2022_06_15})
    if (n == api_version_name(v)) return v;
  return std::nullopt;
}

std::string profile_url(const TrustedSigningSettings& s) {
  auto segment = [](const std::string& x) { return urls::encode(x, urls::unreserved_chars); };
  std::string base = s.endpoint;
  while (!base.empty() && base.back() == '/') base.pop_back();
  return base + "/codesigningaccounts/" + segment(s.account) + "/certificateprofiles/" +
         segment(s.profile);
}

std::string sign_url(std::string_view profile_url, ApiVersion v) {
  // GA: RPC style, `{profile}:sign`. The profile is percent-encoded, so this ':' is the only one.
  return std::string(profile_url) + (v == ApiVersion::ga_2024_06_15 ? ":sign" : "/sign") +
         "?api-version=" + std::string(api_version_name(v));
}

std::string poll_url(std::string_view profile_url, std::string_view id, ApiVersion v) {
  return std::string(profile_url) + "/sign/" + urls::encode(id, urls::unreserved_chars) +
         "?api-version=" + std::string(api_version_name(v));
}

// ---- Endpoint ----------------------------------------------------------------------------------

void check_endpoint(const std::string& endpoint, const std::optional<std::string>& allowed_hosts) {
  auto fail = [&](const std::string& why) {
    throw InputError("endpoint '" + endpoint + "' " + why +
                     "; use the regional service URL such as https://eus.codesigning.azure.net/ "
                     "(the access token is sent there)");
  };
  auto r = urls::parse_absolute_uri(endpoint);
  if (!r) fail("is not a URL");
  if (r->scheme_id() != urls::scheme::https) fail("must use https://");
  if (r->has_userinfo()) fail("must not contain user information ('@')");
  // Boost.URL 1.81 ends a host at a leading dotted quad ("https://127.0.0.1.evil.com/" would be
  // host 127.0.0.1 on port 443): what is checked and reached must be exactly what is written.
  if (!http::authority_as_written(endpoint))
    fail(
        "is not read the way it is written: its host or port is followed by characters that "
        "belong to neither (or its path does not start with '/')");
  if (r->has_port()) {
    auto port = r->port();
    bool digits =
        !port.empty() && port.size() <= 5 &&
        std::all_of(port.begin(), port.end(), [](unsigned char c) { return std::isdigit(c) != 0; });
    if (!digits || std::stoi(std::string(port)) < 1 || std::stoi(std::string(port)) > 65535)
      fail("has an invalid port");
  }
  if (r->has_query() || r->has_fragment()) fail("must not have a query or a fragment");
  // A percent-encoded host could decode into something the checks below did not see.
  if (r->encoded_host().find('%') != urls::string_view::npos) fail("has an encoded host name");
  std::string host = lower(std::string(r->encoded_host()));
  if (host.empty()) fail("has no host");

  if (allowed_hosts) {
    std::string_view list = *allowed_hosts;
    while (!list.empty()) {
      auto comma = list.find(',');
      std::string item = lower(trim(list.substr(0, comma)));
      if (!item.empty() && item == host) return;
      if (comma == std::string_view::npos) break;
      list.remove_prefix(comma + 1);
    }
  }
  bool service = r->host_type() == urls::host_type::name && host.size() > kServiceSuffix.size() &&
                 host.ends_with(kServiceSuffix) && host.front() != '.' &&
                 host.find("..") == std::string::npos;
  if (!service)
    fail(
        "is not a Trusted Signing endpoint: its host must end in .codesigning.azure.net or be "
        "listed in TSIGN_ALLOWED_HOSTS");
}

// ---- Certificates ------------------------------------------------------------------------------

namespace {

bool issued(X509* subject, X509* issuer) {
  return subject != issuer && X509_check_issued(issuer, subject) == X509_V_OK;
}

std::vector<X509Ptr> from_pem(std::string_view text) {
  std::vector<X509Ptr> out;
  {
    BioPtr bio(BIO_new_mem_buf(text.data(), static_cast<int>(text.size())));
    while (X509* x = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) out.emplace_back(x);
  }
  if (out.empty()) {
    BioPtr bio(BIO_new_mem_buf(text.data(), static_cast<int>(text.size())));
    if (PKCS7Ptr p7{PEM_read_bio_PKCS7(bio.get(), nullptr, nullptr, nullptr)};
        p7 && PKCS7_type_is_signed(p7.get())) {
      STACK_OF(X509)* certs = p7->d.sign->cert;
      for (int i = 0; i < sk_X509_num(certs); ++i) {
        X509* x = sk_X509_value(certs, i);
        X509_up_ref(x);
        out.emplace_back(x);
      }
    }
  }
  openssl_error_text();  // the expected "no start line" of the last read
  return out;
}

std::vector<X509Ptr> from_der(ByteView data) {
  std::vector<X509Ptr> out;
  if (data.empty() || data[0] != 0x30) return out;  // every DER structure here is a SEQUENCE
  const unsigned char* p = data.data();
  const unsigned char* end = data.data() + data.size();
  if (PKCS7Ptr p7{d2i_PKCS7(nullptr, &p, static_cast<long>(data.size()))};
      p7 && p == end && PKCS7_type_is_signed(p7.get()) && p7->d.sign) {
    STACK_OF(X509)* certs = p7->d.sign->cert;
    for (int i = 0; i < sk_X509_num(certs); ++i) {
      X509* x = sk_X509_value(certs, i);
      X509_up_ref(x);
      out.emplace_back(x);
    }
    return out;
  }
  // Concatenated DER certificates: every byte must belong to one.
  p = data.data();
  while (p < end) {
    X509* x = d2i_X509(nullptr, &p, static_cast<long>(end - p));
    if (!x) {
      out.clear();
      break;
    }
    out.emplace_back(x);
  }
  openssl_error_text();
  return out;
}

std::vector<X509Ptr> decode_any(ByteView data, int depth) {
  std::string_view text(reinterpret_cast<const char*>(data.data()), data.size());
  if (text.find("-----BEGIN ") != std::string_view::npos) return from_pem(text);
  if (auto certs = from_der(data); !certs.empty()) return certs;
  // Base64 of any of the above, or base64 of base64 (the service's usual answer).
  if (depth < 3) {
    if (auto decoded = base64_decode(text); decoded && !decoded->empty())
      return decode_any(*decoded, depth + 1);
  }
  return {};
}

}  // namespace

std::vector<X509Ptr> order_leaf_first(std::vector<X509Ptr> certs) {
  // Drop duplicates first: a repeated certificate would "issue" its twin's children twice.
  std::vector<X509Ptr> unique;
  for (auto& c : certs) {
    bool dup = std::any_of(unique.begin(), unique.end(),
                           [&](const X509Ptr& u) { return X509_cmp(u.get(), c.get()) == 0; });
    if (!dup) unique.push_back(std::move(c));
  }
  const std::size_t n = unique.size();
  if (n < 2) return unique;

  std::size_t leaf = 0;
  for (std::size_t i = 0; i < n; ++i) {
    bool issuer_of_another = false;
    for (std::size_t j = 0; j < n && !issuer_of_another; ++j)
      issuer_of_another = j != i && issued(unique[j].get(), unique[i].get());
    if (!issuer_of_another) {
      leaf = i;
      break;
    }
  }
  std::vector<X509Ptr> out;
  std::vector<bool> used(n, false);
  std::size_t cur = leaf;
  used[cur] = true;
  out.push_back(std::move(unique[cur]));
  for (;;) {
    X509* last = out.back().get();
    std::size_t next = n;
    for (std::size_t j = 0; j < n; ++j)
      if (!used[j] && issued(last, unique[j].get())) {
        next = j;
        break;
      }
    if (next == n) break;
    used[next] = true;
    out.push_back(std::move(unique[next]));
  }
  for (std::size_t j = 0; j < n; ++j)
    if (!used[j]) out.push_back(std::move(unique[j]));
  return out;
}

std::vector<X509Ptr> decode_certificate_chain(std::string_view text) {
  auto certs = decode_any(as_bytes(text), 0);
  if (certs.empty())
    throw FileError(
        "the signing service sent a signing certificate that is neither a PKCS#7 certificate "
        "bundle, PEM nor DER certificates (base64 once or twice)");
  return order_leaf_first(std::move(certs));
}

// ---- Answers ------------------------------------------------------------------------------------

namespace {

std::string str(const json::object& o, std::string_view key) {
  if (auto* v = o.if_contains(key); v && v->is_string()) return std::string(v->as_string());
  return {};
}

std::optional<std::string> opt_str(const json::object& o, std::string_view key) {
  if (auto* v = o.if_contains(key); v && v->is_string()) return std::string(v->as_string());
  return std::nullopt;
}

// The error object of an answer: errorDetail {code, message, target} (preview), inside
// errorResponse (2023-06-15-preview), or the Azure Core `error` -- an ErrorResponse
// ({"error": {...}}) in the GA sign answer's schema, the Error itself in its poll answer's.
const json::object* error_object(const json::object& o) {
  for (const char* key : {"errorDetail", "errorResponse", "error"}) {
    if (auto* v = o.if_contains(key); v && v->is_object()) {
      const json::object* d = &v->as_object();
      for (const char* inner_key : {"errorDetail", "error"})
        if (auto* inner = d->if_contains(inner_key); inner && inner->is_object())
          return &inner->as_object();
      return d;
    }
  }
  return nullptr;
}

// The error object as one line: "code: message (target)".
std::string error_text(const json::object& o) {
  const json::object* d = error_object(o);
  if (!d) return {};
  std::string out = str(*d, "code");
  if (auto m = str(*d, "message"); !m.empty()) out += (out.empty() ? "" : ": ") + m;
  if (auto t = str(*d, "target"); !t.empty()) out += " (target " + t + ")";
  return out;
}

// Error bodies are often empty or HTML: nullopt then, never an exception.
std::optional<json::object> json_object(std::string_view body) {
  boost::system::error_code ec;
  json::value v = json::parse(body, ec);
  if (ec || !v.is_object()) return std::nullopt;
  return std::move(v.as_object());
}

}  // namespace

std::string service_error_text(std::string_view body, std::string_view error_code_header) {
  std::string text;
  if (auto o = json_object(body)) text = error_text(*o);
  std::string header = trim(error_code_header);
  if (text.empty()) return header;
  if (!header.empty() && text.rfind(header, 0) != 0) text = header + " " + text;
  return text;
}

bool refused_for_version(unsigned status, std::string_view body,
                         std::string_view error_code_header) {
  if (status == 401 || status == 404) return true;
  if (status != 400) return false;
  // UnsupportedApiVersion (the service, Azure's API gateway), InvalidApiVersionParameter (ARM),
  // ApiVersionNotSupported...: every code Azure uses for it names the api-version.
  std::string code = lower(trim(error_code_header));
  if (auto o = json_object(body))
    if (const json::object* d = error_object(*o)) code += " " + lower(str(*d, "code"));
  return code.find("apiversion") != std::string::npos;
}

bool says_token_invalid(const http::Response& res) {
  if (res.status != 401) return false;
  if (auto h = res.header("www-authenticate"); h && lower(*h).find("invalid_token") != npos)
    return true;
  return lower(service_error_text(res.body)).find("expired") != npos;
}

SignStatus parse_sign_status(std::string_view body) {
  boost::system::error_code ec;
  json::value v = json::parse(body, ec);
  if (ec || !v.is_object()) throw FileError("the signing service sent a malformed answer");
  const auto& o = v.as_object();
  const json::object* r = &o;
  if (auto* res = o.if_contains("result"); res && res->is_object()) r = &res->as_object();

  SignStatus s;
  s.status = str(*r, "status");
  if (s.status.empty()) s.status = str(o, "status");
  s.operation_id = str(*r, "operationId");
  if (s.operation_id.empty()) s.operation_id = str(o, "operationId");
  if (s.operation_id.empty()) s.operation_id = str(o, "id");
  s.signature = opt_str(*r, "signature");
  if (!s.signature) s.signature = opt_str(o, "signature");
  s.signing_certificate = opt_str(*r, "signingCertificate");
  if (!s.signing_certificate) s.signing_certificate = opt_str(o, "signingCertificate");
  s.error = error_text(o);
  if (s.error.empty() && r != &o) s.error = error_text(*r);
  return s;
}

// ---- The signer
// ----------------------------------------------------------------------------------

namespace {

std::string signature_algorithm(DigestAlg alg) {
  switch (alg) {
    case DigestAlg::sha256:
      return "RS256";
    case DigestAlg::sha384:
      return "RS384";
    case DigestAlg::sha512:
      return "RS512";
  }
  return "RS256";
}

bool final_failure(const std::string& status) {
  std::string s = lower(status);
  return s == "failed" || s == "timedout" || s == "notfound" || s == "canceled" || s == "cancelled";
}

std::optional<std::chrono::milliseconds> retry_after(const http::Response& res) {
  auto h = res.header("retry-after");
  if (!h) return std::nullopt;
  std::string v = trim(*h);
  if (v.empty() || v.size() > 6 ||
      !std::all_of(v.begin(), v.end(), [](unsigned char c) { return std::isdigit(c); }))
    return std::nullopt;  // an HTTP-date: fall back to the default pacing
  // A minute at most: a longer wait is better spent polling again.
  return std::chrono::milliseconds(std::min(std::stoi(v), 60) * 1000);
}

class TrustedSigningSigner final : public Signer {
 public:
  TrustedSigningSigner(const TrustedSigningSettings& s, http::Client& client,
                       auth::TokenSource& tokens, Log& log)
      : settings_(s), client_(client), tokens_(tokens), log_(log), settled_(s.api_version) {
    auto r = urls::parse_absolute_uri(s.endpoint);
    origin_host_ = lower(std::string(r->encoded_host()));
    origin_port_ = std::string(r->port());
    prefix_ = profile_url(s);
    region_ = origin_host_.substr(0, origin_host_.find('.'));
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
    if (auto loc = res.header("operation-location"); loc && same_origin(*loc)) {
      poll_url = *loc;
    } else {
      if (loc) log_.debug("ignoring Operation-Location on another host than the endpoint");
      if (st.operation_id.empty() && lower(st.status) != "succeeded")
        throw FileError("the signing service sent a malformed answer (no operationId)");
      poll_url = signer::poll_url(prefix_, st.operation_id, version);
    }

    for (int i = 0; lower(st.status) != "succeeded"; ++i) {
      if (final_failure(st.status))
        throw FileError("the signing service reported " + st.status + " for operation " +
                        st.operation_id + (st.error.empty() ? "" : ": " + st.error));
      if (i >= kMaxPolls)
        throw FileError("the signing operation " + st.operation_id + " was still " + st.status +
                        " after " + std::to_string(kMaxPolls) + " polls");
      // Retry-After when the service gives one, else start fast as jsign does.
      co_await wait(
          retry_after(res).value_or(std::chrono::milliseconds(std::min(1000, 50 + 10 * i))));
      res = co_await send("GET", poll_url, {});
      check(res, false, version);
      std::string id = st.operation_id;
      st = parse_sign_status(res.body);
      if (st.operation_id.empty()) st.operation_id = id;
    }
    co_return result(st);
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
      check(res, true, v);
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
      check(res, true, preferred);  // not about the version: the usual error
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
    check(res, true, preferred,
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

  // The poll URL the service names is followed only on the endpoint's own origin: the bearer
  // token goes with every poll.
  bool same_origin(const std::string& url) const {
    auto r = urls::parse_absolute_uri(url);
    return r && http::authority_as_written(url) && r->scheme_id() == urls::scheme::https &&
           !r->has_userinfo() && lower(std::string(r->encoded_host())) == origin_host_ &&
           std::string(r->port()) == origin_port_;
  }

  asio::awaitable<void> wait(std::chrono::milliseconds d) {
    // Never sleep past the run's deadline: fail now instead of after a pointless wait.
    if (auto dl = client_.options().deadline; dl && http::Clock::now() + d >= *dl)
      throw DeadlineError("the deadline passed while the signing service was still working");
    asio::steady_timer t(co_await asio::this_coro::executor, d);
    co_await t.async_wait(asio::use_awaitable);
  }

  asio::awaitable<http::Response> send(const char* method, std::string url, std::string body) {
    // A 401 for an expired token gets one more round with a new token: a run may outlast many
    // tokens, and a token may expire between being taken and being checked.
    for (int round = 1;; ++round) {
      std::optional<auth::AccessToken> sent;  // the token of the last attempt
      http::Request req;
      req.method = method;
      req.url = url;
      req.headers = {{"Accept", "application/json"}};
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
      req.usable = [](const http::Response& r) {
        if (r.status != 200 && r.status != 202) return true;
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

  // Throws the error an answer means unless it is 200/202; `also` is added to what it says.
  void check(const http::Response& res, bool sign_request, ApiVersion version,
             const std::string& also = {}) const {
    if (res.status == 200 || res.status == 202) return;
    std::string detail = service_error_text(res.body, res.header("x-ms-error-code").value_or(""));
    std::string said = (detail.empty() ? "" : " (the service said: " + detail + ")") + also;
    // A pinned version may be what is refused: say so, and how to let tsign choose.
    const std::string api(api_version_name(version));
    const std::string pinned =
        settings_.api_version
            ? "; api-version " + api + " was pinned by the api-version option (empty: automatic)"
            : "";
    if (sign_request && res.status == 400 &&
        refused_for_version(res.status, res.body, res.header("x-ms-error-code").value_or("")))
      // Every file would fail the same way: a configuration error of the run (exit 2).
      throw InputError("the Trusted Signing service does not accept api-version " + api + " for " +
                       where() + said + pinned);
    if (res.status == 401 && says_token_invalid(res))
      // Refused although just obtained (send() retried with a new one): not a missing role.
      throw AuthError(
          "the Trusted Signing service refused a newly obtained access token from the " +
          tokens_.name() + " credential as expired or invalid (HTTP 401) for " + where() + said +
          ". Check the clock of this machine (tokens are checked against the service's time) and "
          "that the credential gets its tokens for https://codesigning.azure.net.");
    if (res.status == 401 || res.status == 403)
      throw AuthError(
          "the Trusted Signing service refused the identity (HTTP " + std::to_string(res.status) +
          ") for " + where() + said +
          ". Usual causes: the identity lacks the \"Artifact Signing Certificate Profile "
          "Signer\" role (formerly \"Trusted Signing Certificate Profile Signer\") on the account "
          "or the profile; or the endpoint's region is not the account's region" +
          (sign_request ? pinned : "") + ".");
    if (res.status == 404 && sign_request)
      // Every file would fail the same way: a configuration error of the run (exit 2).
      throw InputError("the Trusted Signing service does not know " + where() + said +
                       "; check signing-account-name, certificate-profile-name and endpoint" +
                       pinned);
    throw FileError("the Trusted Signing service answered HTTP " + std::to_string(res.status) +
                    (sign_request ? " to the sign request" : " to a status poll") + " for " +
                    where() + said);
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
  std::string origin_host_, origin_port_, prefix_, region_;
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
