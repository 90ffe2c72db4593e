// Pure parts of the Trusted Signing signer: the endpoint allowlist, the decoding of every shape
// of signingCertificate, leaf-first ordering, and the answer shapes of both api-versions.
#include <catch2/catch.hpp>

#include <algorithm>
#include <random>

#include "common/error.hpp"
#include "signer/trusted_signing.hpp"
#include "support/pki.hpp"

using namespace tsign;
using namespace tsign::signer;

TEST_CASE("check_endpoint accepts the service's regional hosts", "[signer]") {
  std::optional<std::string> none;
  CHECK_NOTHROW(check_endpoint("https://eus.codesigning.azure.net/", none));
  CHECK_NOTHROW(check_endpoint("https://eus.codesigning.azure.net", none));
  CHECK_NOTHROW(check_endpoint("https://WUS2.CodeSigning.Azure.NET/", none));
  CHECK_NOTHROW(check_endpoint("https://127.0.0.1:8443/", std::string("localhost, 127.0.0.1")));
  CHECK_NOTHROW(check_endpoint("https://LocalHost:1/", std::string(" localhost ")));
}

TEST_CASE("check_endpoint refuses every other host and tricky spellings", "[signer]") {
  std::optional<std::string> allow = std::string("localhost,127.0.0.1");
  for (std::string bad : {
           "http://eus.codesigning.azure.net/",
           "https://evil.com/.codesigning.azure.net",
           "https://x.codesigning.azure.net.evil.com/",
           "https://eus.codesigning.azure.net@evil.com/",
           "https://user:pw@eus.codesigning.azure.net/",
           "https://evil.com#.codesigning.azure.net",
           "https://evil.com?.codesigning.azure.net",
           "https://evil.com\\.codesigning.azure.net",
           "https://codesigning.azure.net/",
           "https://.codesigning.azure.net/",
           "https://a..codesigning.azure.net/",
           "https://evilcodesigning.azure.net/",
           "https://eus%2ecodesigning.azure.net/",
           "https://eus.codesigning.azure.net./",
           "eus.codesigning.azure.net",
           "//eus.codesigning.azure.net/",
           "ftp://eus.codesigning.azure.net/",
           "https://localhost.evil.com/",
           "https://127.0.0.2/",
           "",
           // Read differently from how they are written (Boost.URL ends a host at a dotted quad):
           "https://127.0.0.1.evil.com/",
           "https://127.0.0.1x:8443/",
           "https://127.0.0.1:8443x/",
           "https://127.0.0.1:8443@evil.com/",
           "https://127.0.0.1%40evil.com/",
           "https://127.0.0.1:99999/",
           "https://127.0.0.1:0/",
           "https://127.0.0.1:/",
       }) {
    INFO(bad);
    try {
      check_endpoint(bad, allow);
      FAIL("accepted " + bad);
    } catch (const InputError& e) {
      CHECK(e.code() == ExitCode::input);
      CHECK(std::string(e.what()).find("'" + bad + "'") != std::string::npos);
    }
  }
  // Without the allowlist, loopback is refused too.
  CHECK_THROWS_AS(check_endpoint("https://127.0.0.1:8443/", std::nullopt), InputError);
  CHECK_THROWS_AS(check_endpoint("https://localhost/", std::string("")), InputError);
}

namespace {

std::vector<std::string> names(const std::vector<X509Ptr>& certs) {
  std::vector<std::string> out;
  for (const auto& c : certs) {
    char buf[256];
    X509_NAME_get_text_by_NID(X509_get_subject_name(c.get()), NID_commonName, buf, sizeof buf);
    out.emplace_back(buf);
  }
  return out;
}

const std::vector<std::string> kOrder = {"test leaf", "test intermediate", "test root"};

}  // namespace

TEST_CASE("signingCertificate is decoded in every shape, leaf first", "[signer]") {
  test::TestChain chain;
  // Shuffled on purpose: the service's order is not to be relied on.
  std::vector<X509*> shuffled = {chain.root.cert.get(), chain.leaf.cert.get(),
                                 chain.inter.cert.get()};
  Bytes p7 = test::certs_only_pkcs7(shuffled);

  SECTION("base64 of MIME base64 (CRLF lines) of PKCS#7: what the service sends") {
    std::string inner = test::mime_base64(p7);
    REQUIRE(inner.find("\r\n") != std::string::npos);
    CHECK(names(decode_certificate_chain(base64_encode(as_bytes(inner)))) == kOrder);
  }
  SECTION("single base64 of PKCS#7") {
    CHECK(names(decode_certificate_chain(base64_encode(p7))) == kOrder);
  }
  SECTION("MIME base64 of PKCS#7") {
    CHECK(names(decode_certificate_chain(test::mime_base64(p7))) == kOrder);
  }
  SECTION("PEM certificates, raw and base64") {
    std::string pem = test::to_pem(chain.inter.cert.get()) + test::to_pem(chain.root.cert.get()) +
                      test::to_pem(chain.leaf.cert.get());
    CHECK(names(decode_certificate_chain(pem)) == kOrder);
    CHECK(names(decode_certificate_chain(base64_encode(as_bytes(pem)))) == kOrder);
  }
  SECTION("concatenated DER certificates, base64") {
    Bytes der;
    for (X509* x : shuffled) {
      Bytes d = test::to_der(x);
      der.insert(der.end(), d.begin(), d.end());
    }
    CHECK(names(decode_certificate_chain(base64_encode(der))) == kOrder);
    CHECK(names(decode_certificate_chain(base64_encode(as_bytes(base64_encode(der))))) == kOrder);
  }
  SECTION("garbage is a FileError") {
    CHECK_THROWS_AS(decode_certificate_chain("not base64 at all!"), FileError);
    CHECK_THROWS_AS(decode_certificate_chain(base64_encode(as_bytes("hello world"))), FileError);
    Bytes truncated(p7.begin(), p7.begin() + static_cast<long>(p7.size() / 2));
    CHECK_THROWS_AS(decode_certificate_chain(base64_encode(truncated)), FileError);
    CHECK_THROWS_AS(decode_certificate_chain(""), FileError);
  }
}

TEST_CASE("order_leaf_first orders any permutation and drops duplicates", "[signer]") {
  test::TestChain chain;
  std::vector<X509*> all = {chain.leaf.cert.get(), chain.inter.cert.get(), chain.root.cert.get()};
  std::sort(all.begin(), all.end());
  do {
    std::vector<X509Ptr> v;
    for (X509* x : all) {
      X509_up_ref(x);
      v.emplace_back(x);
    }
    CHECK(names(order_leaf_first(std::move(v))) == kOrder);
  } while (std::next_permutation(all.begin(), all.end()));

  std::vector<X509Ptr> dup;
  for (X509* x : {chain.inter.cert.get(), chain.leaf.cert.get(), chain.inter.cert.get()}) {
    X509_up_ref(x);
    dup.emplace_back(x);
  }
  CHECK(names(order_leaf_first(std::move(dup))) ==
        std::vector<std::string>{"test leaf", "test intermediate"});

  // Without the root, leaf then intermediate.
  std::vector<X509Ptr> two;
  for (X509* x : {chain.inter.cert.get(), chain.leaf.cert.get()}) {
    X509_up_ref(x);
    two.emplace_back(x);
  }
  CHECK(names(order_leaf_first(std::move(two))) ==
        std::vector<std::string>{"test leaf", "test intermediate"});
}

TEST_CASE("parse_sign_status reads both api-versions' shapes", "[signer]") {
  auto s = parse_sign_status(
      R"({"operationId":"op-1","status":"InProgress","signature":null,"signingCertificate":null})");
  CHECK(s.operation_id == "op-1");
  CHECK(s.status == "InProgress");
  CHECK_FALSE(s.signature);
  CHECK_FALSE(s.signing_certificate);

  s = parse_sign_status(
      R"({"id":"op-2","status":"Succeeded","result":{"operationId":"op-2","status":"Succeeded","signature":"AAEC","signingCertificate":"Y2VydA=="},"errorResponse":null})");
  CHECK(s.operation_id == "op-2");
  CHECK(s.status == "Succeeded");
  CHECK(s.signature == std::optional<std::string>("AAEC"));
  CHECK(s.signing_certificate == std::optional<std::string>("Y2VydA=="));

  s = parse_sign_status(
      R"({"operationId":"op-3","status":"Failed","errorDetail":{"code":"SignFailed","message":"HSM unavailable","target":"digest"}})");
  CHECK(s.status == "Failed");
  CHECK(s.error == "SignFailed: HSM unavailable (target digest)");

  s = parse_sign_status(
      R"({"id":"op-4","status":"Failed","errorResponse":{"errorDetail":{"code":"Bad","message":"m"}}})");
  CHECK(s.error == "Bad: m");

  CHECK_THROWS_WITH(parse_sign_status("<html>oops</html>"),
                    Catch::Contains("the signing service sent a malformed answer"));
  CHECK_THROWS_AS(parse_sign_status("[1,2]"), FileError);
  CHECK_THROWS_AS(parse_sign_status(""), FileError);
}

TEST_CASE("parse_sign_status reads the GA (2024-06-15) Azure Core operation", "[signer]") {
  // The 202 of `:sign` (its example in the OpenAPI description has "In Progress" and an empty
  // result), a Running poll, and the final answer with the wrapped result.
  auto s = parse_sign_status(R"({"id":"op-5","status":"In Progress","result":{}})");
  CHECK(s.operation_id == "op-5");
  CHECK(s.status == "In Progress");
  CHECK_FALSE(s.signature);

  s = parse_sign_status(R"({"id":"op-5","status":"Running"})");
  CHECK(s.status == "Running");

  s = parse_sign_status(
      R"({"id":"op-5","status":"Succeeded","result":{"signature":"AAEC","signingCertificate":"Y2VydA=="}})");
  CHECK(s.operation_id == "op-5");
  CHECK(s.status == "Succeeded");
  CHECK(s.signature == std::optional<std::string>("AAEC"));
  CHECK(s.signing_certificate == std::optional<std::string>("Y2VydA=="));
  CHECK(s.error.empty());

  // Failed: the poll's `error` is an Azure Core Error; the sign answer's an ErrorResponse.
  s = parse_sign_status(
      R"({"id":"op-6","status":"Failed","error":{"code":"SigningFailed","message":"HSM unavailable","target":"digest","details":[]}})");
  CHECK(s.status == "Failed");
  CHECK(s.error == "SigningFailed: HSM unavailable (target digest)");
  s = parse_sign_status(
      R"({"id":"op-7","status":"Failed","error":{"error":{"code":"Bad","message":"m"}}})");
  CHECK(s.error == "Bad: m");
  s = parse_sign_status(R"({"id":"op-8","status":"Running","error":null,"result":null})");
  CHECK(s.error.empty());
}

TEST_CASE("service errors in every shape, and the refusals that may mean the api-version",
          "[signer]") {
  CHECK(service_error_text(R"({"error":{"code":"UnsupportedApiVersion","message":"no"}})", "") ==
        "UnsupportedApiVersion: no");
  CHECK(service_error_text(R"({"errorDetail":{"code":"NotFound","message":"m"}})", "") ==
        "NotFound: m");
  CHECK(service_error_text("", "UnsupportedApiVersion") == "UnsupportedApiVersion");
  CHECK(service_error_text("<html>Bad Request</html>", " Throttled ") == "Throttled");
  CHECK(service_error_text(R"({"error":{"code":"X","message":"m"}})", "X") == "X: m");
  CHECK(service_error_text(R"({"error":{"code":"X","message":"m"}})", "Y") == "Y X: m");
  CHECK(service_error_text("", "").empty());

  CHECK(
      refused_for_version(400, R"({"error":{"code":"UnsupportedApiVersion","message":"m"}})", ""));
  CHECK(refused_for_version(400, "", "UnsupportedApiVersion"));
  CHECK(refused_for_version(400, R"({"error":{"code":"InvalidApiVersionParameter"}})", ""));
  CHECK(refused_for_version(400, R"({"errorDetail":{"code":"UnsupportedApiVersion"}})", ""));
  CHECK(refused_for_version(401, "", ""));
  CHECK(refused_for_version(404, R"({"errorDetail":{"code":"NotFound"}})", ""));
  CHECK_FALSE(refused_for_version(400, R"({"errorDetail":{"code":"BadRequest"}})", ""));
  CHECK_FALSE(refused_for_version(400, "", ""));
  CHECK_FALSE(refused_for_version(403, "", ""));
  CHECK_FALSE(refused_for_version(429, "", "UnsupportedApiVersion"));
  CHECK_FALSE(refused_for_version(500, "", ""));
}

TEST_CASE("the URLs of both contracts", "[signer]") {
  TrustedSigningSettings s{"https://eus.codesigning.azure.net/", "my acct", "prof:1", ""};
  std::string p = profile_url(s);
  CHECK(p ==
        "https://eus.codesigning.azure.net/codesigningaccounts/my%20acct/certificateprofiles/"
        "prof%3A1");
  CHECK(sign_url(p, ApiVersion::ga_2024_06_15) == p + ":sign?api-version=2024-06-15");
  CHECK(sign_url(p, ApiVersion::preview_2022_06_15) == p + "/sign?api-version=2022-06-15-preview");
  CHECK(poll_url(p, "op-1", ApiVersion::ga_2024_06_15) == p + "/sign/op-1?api-version=2024-06-15");
  CHECK(poll_url(p, "a/b", ApiVersion::preview_2022_06_15) ==
        p + "/sign/a%2Fb?api-version=2022-06-15-preview");

  CHECK(parse_api_version("2024-06-15") == ApiVersion::ga_2024_06_15);
  CHECK(parse_api_version(" 2022-06-15-PREVIEW ") == ApiVersion::preview_2022_06_15);
  CHECK_FALSE(parse_api_version(""));
  CHECK_FALSE(parse_api_version("2023-06-15-preview"));
  CHECK(api_version_name(ApiVersion::ga_2024_06_15) == "2024-06-15");
  CHECK(api_version_name(ApiVersion::preview_2022_06_15) == "2022-06-15-preview");
}
