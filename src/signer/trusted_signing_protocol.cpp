// The pure part of the Trusted Signing data plane (trusted_signing_protocol.hpp): the GA
// api-version 2024-06-15 (the OpenAPI description in azure-rest-api-specs,
// specification/artifactsigning/data-plane) and 2022-06-15-preview as docs/protocol.md §3
// describes it; the wrapped answer shape of 2023-06-15-preview is understood too. The
// certificate chain arrives as a PKCS#7 certs-only SignedData (RFC 2315 §9), base64-encoded
// twice.
#include "signer/trusted_signing_protocol.hpp"

#include <algorithm>
#include <cctype>

#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <boost/json.hpp>
#include <boost/url/encode.hpp>
#include <boost/url/parse.hpp>
#include <boost/url/rfc/unreserved_chars.hpp>

#include "common/bytes.hpp"
#include "common/error.hpp"
#include "common/text.hpp"

namespace tsign::signer {

namespace json = boost::json;
namespace urls = boost::urls;

namespace {

constexpr std::string_view kServiceSuffix = ".codesigning.azure.net";
constexpr auto npos = std::string::npos;

}  // namespace

// ---- API versions and URLs ---------------------------------------------------------------------

std::string_view api_version_name(ApiVersion v) {
  return v == ApiVersion::ga_2024_06_15 ? "2024-06-15" : "2022-06-15-preview";
}

std::optional<ApiVersion> parse_api_version(std::string_view name) {
  std::string n = ascii_lower(trim(name));
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

std::string certchain_url(std::string_view profile_url, ApiVersion v) {
  return std::string(profile_url) +
         "/sign/certchain?api-version=" + std::string(api_version_name(v));
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
  std::string host = ascii_lower(std::string(r->encoded_host()));
  if (host.empty()) fail("has no host");

  if (allowed_hosts) {
    std::string_view list = *allowed_hosts;
    while (!list.empty()) {
      auto comma = list.find(',');
      std::string item = ascii_lower(trim(list.substr(0, comma)));
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

bool is_certificate_chain(std::string_view text) {
  return !decode_any(as_bytes(text), 0).empty();
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
  std::string header(trim(error_code_header));
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
  std::string code = ascii_lower(trim(error_code_header));
  if (auto o = json_object(body))
    if (const json::object* d = error_object(*o)) code += " " + ascii_lower(str(*d, "code"));
  return code.find("apiversion") != std::string::npos;
}

bool says_token_invalid(const http::Response& res) {
  if (res.status != 401) return false;
  if (auto h = res.header("www-authenticate"); h && ascii_lower(*h).find("invalid_token") != npos)
    return true;
  return ascii_lower(service_error_text(res.body)).find("expired") != npos;
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

// ---- Polling
// -------------------------------------------------------------------------------------

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

bool status_succeeded(std::string_view status) {
  return ascii_lower(std::string(status)) == "succeeded";
}

bool status_failed(std::string_view status) {
  std::string s = ascii_lower(std::string(status));
  return s == "failed" || s == "timedout" || s == "notfound" || s == "canceled" || s == "cancelled";
}

std::optional<std::chrono::milliseconds> poll_retry_after(const http::Response& res) {
  auto h = res.header("retry-after");
  if (!h) return std::nullopt;
  std::string v(trim(*h));
  if (v.empty() || v.size() > 6 ||
      !std::all_of(v.begin(), v.end(), [](unsigned char c) { return std::isdigit(c); }))
    return std::nullopt;  // an HTTP-date: fall back to the default pacing
  // A minute at most: a longer wait is better spent polling again.
  return std::chrono::milliseconds(std::min(std::stoi(v), 60) * 1000);
}

bool same_origin(std::string_view url, std::string_view endpoint) {
  auto e = urls::parse_absolute_uri(endpoint);
  auto r = urls::parse_absolute_uri(url);
  return e && r && http::authority_as_written(url) && r->scheme_id() == urls::scheme::https &&
         !r->has_userinfo() &&
         ascii_lower(std::string(r->encoded_host())) ==
             ascii_lower(std::string(e->encoded_host())) &&
         r->port() == e->port();
}

std::string endpoint_region(std::string_view endpoint) {
  auto e = urls::parse_absolute_uri(endpoint);
  if (!e) return {};
  std::string host = ascii_lower(std::string(e->encoded_host()));
  return host.substr(0, host.find('.'));
}

}  // namespace tsign::signer
