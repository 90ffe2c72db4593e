// The polling rules of the Trusted Signing protocol as pure functions (trusted_signing_protocol):
// which status words end an operation, how long a poll waits, which Operation-Location is
// followed, and what names the signer in messages.
#include <catch2/catch.hpp>

#include "signer/trusted_signing_protocol.hpp"

using namespace std::chrono_literals;
using namespace tsign;
using namespace tsign::signer;

TEST_CASE("the sign request names the signature algorithm of the digest", "[signer]") {
  CHECK(signature_algorithm(DigestAlg::sha256) == "RS256");
  CHECK(signature_algorithm(DigestAlg::sha384) == "RS384");
  CHECK(signature_algorithm(DigestAlg::sha512) == "RS512");
}

TEST_CASE("operation status words, in any letter case", "[signer]") {
  for (const char* s : {"Succeeded", "succeeded", "SUCCEEDED"}) CHECK(status_succeeded(s));
  for (const char* s : {"Failed", "TimedOut", "notfound", "Canceled", "Cancelled"}) {
    CHECK(status_failed(s));
    CHECK_FALSE(status_succeeded(s));
  }
  // Still running, or a word this version does not know: poll again (kMaxPolls bounds it).
  for (const char* s : {"InProgress", "NotStarted", "Running", "", "Succeeded "}) {
    CHECK_FALSE(status_succeeded(s));
    CHECK_FALSE(status_failed(s));
  }
}

TEST_CASE("a poll waits as long as Retry-After asks, a minute at most", "[signer]") {
  auto with = [](std::string value) {
    http::Response r;
    r.status = 202;
    r.headers["retry-after"] = std::move(value);
    return poll_retry_after(r);
  };
  CHECK(with("2") == 2000ms);
  CHECK(with(" 0 ") == 0ms);
  CHECK(with("3600") == 60000ms);
  CHECK_FALSE(with("Wed, 21 Oct 2026 07:28:00 GMT"));  // an HTTP-date: the default pacing
  CHECK_FALSE(with("-1"));
  CHECK_FALSE(with("9999999"));
  CHECK_FALSE(with(""));
  CHECK_FALSE(poll_retry_after(http::Response{}));
}

TEST_CASE("an Operation-Location is followed only on the endpoint's own origin", "[signer]") {
  const std::string ep = "https://eus.codesigning.azure.net/";
  CHECK(same_origin("https://eus.codesigning.azure.net/a/sign/1?api-version=x", ep));
  CHECK(same_origin("https://EUS.CodeSigning.Azure.NET/op", ep));
  CHECK_FALSE(same_origin("http://eus.codesigning.azure.net/op", ep));   // the token in clear
  CHECK_FALSE(same_origin("https://weu.codesigning.azure.net/op", ep));  // another host
  CHECK_FALSE(same_origin("https://eus.codesigning.azure.net:8443/op", ep));
  CHECK_FALSE(same_origin("https://u@eus.codesigning.azure.net/op", ep));
  CHECK_FALSE(same_origin("https://eus.codesigning.azure.net.evil.com/op", ep));
  CHECK_FALSE(same_origin("/relative/op", ep));
  CHECK_FALSE(same_origin("not a url", ep));

  const std::string local = "https://127.0.0.1:8443";
  CHECK(same_origin("https://127.0.0.1:8443/op", local));
  CHECK_FALSE(same_origin("https://127.0.0.1:8444/op", local));
  CHECK_FALSE(same_origin("https://127.0.0.1.evil.com:8443/op", local));
}

TEST_CASE("the region in messages is the endpoint host's first label", "[signer]") {
  CHECK(endpoint_region("https://EUS.codesigning.azure.net/") == "eus");
  CHECK(endpoint_region("https://weu.codesigning.azure.net") == "weu");
  CHECK(endpoint_region("https://localhost:8443/") == "localhost");
}
