// Unit tests of the signing service's pure decisions (src/emulator/signing_rules.hpp): no
// socket, no key, no clock.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include <boost/json.hpp>

#include "common/bytes.hpp"
#include "emulator/signing_rules.hpp"

namespace http = boost::beast::http;
namespace json = boost::json;
using namespace tsign;
using namespace tsign::emulator;

namespace {

std::vector<std::string> path(const std::string& profile_part, std::vector<std::string> rest = {}) {
  std::vector<std::string> segs{"codesigningaccounts", "acc", "certificateprofiles", profile_part};
  segs.insert(segs.end(), rest.begin(), rest.end());
  return segs;
}

// The faults of `n` requests in a row; `sign` says which are sign requests (else polls).
std::vector<Fault> faults_of(const Options& o, const std::vector<bool>& sign, int in_flight = 0) {
  FaultCounter c;
  std::vector<Fault> out;
  for (bool s : sign) out.push_back(c.next(o, s, in_flight));
  return out;
}

}  // namespace

TEST_CASE("classify_service_request: the operations under a certificate profile") {
  auto colon = classify_service_request(path("prof:sign"), http::verb::post);
  CHECK(colon.kind == "sign");
  CHECK(colon.colon_sign);
  CHECK(colon.account == "acc");
  CHECK(colon.profile == "prof");

  auto slash = classify_service_request(path("prof", {"sign"}), http::verb::post);
  CHECK(slash.kind == "sign");
  CHECK_FALSE(slash.colon_sign);
  CHECK(slash.profile == "prof");

  auto poll = classify_service_request(path("prof", {"sign", "op-1"}), http::verb::get);
  CHECK(poll.kind == "poll");
  CHECK(poll.operation == "op-1");
  for (const char* what : {"certchain", "rootcert", "eku"})
    CHECK(classify_service_request(path("prof", {"sign", what}), http::verb::get).kind == what);

  // The wrong method, a short or long path, another collection: nothing the service serves.
  CHECK(classify_service_request(path("prof:sign"), http::verb::get).kind == "unknown");
  CHECK(classify_service_request(path("prof", {"sign"}), http::verb::get).kind == "unknown");
  CHECK(classify_service_request(path("prof", {"sign", "x"}), http::verb::post).kind == "unknown");
  CHECK(classify_service_request(path("prof"), http::verb::post).kind == "unknown");
  CHECK(classify_service_request(path("prof", {"sign", "x", "y"}), http::verb::get).kind ==
        "unknown");
  CHECK(classify_service_request({"codesigningaccounts", "acc", "profiles", "p:sign"},
                                 http::verb::post)
            .kind == "unknown");
}

TEST_CASE("api-versions: which are served, their sign routes and answer shapes") {
  std::vector<std::string> served{"2022-06-15-preview", "2024-06-15"};
  CHECK(api_served(served, "2024-06-15"));
  CHECK_FALSE(api_served(served, "2023-06-15-preview"));
  CHECK_FALSE(api_served(served, ""));

  CHECK(sign_route_exists("2024-06-15", true));
  CHECK_FALSE(sign_route_exists("2024-06-15", false));
  CHECK_FALSE(sign_route_exists("2022-06-15-preview", true));
  CHECK(sign_route_exists("2022-06-15-preview", false));
  CHECK(sign_route_exists("2023-06-15-preview", true));
  CHECK(sign_route_exists("2023-06-15-preview", false));

  CHECK(api_shape("2024-06-15") == ApiShape::ga2024);
  CHECK(api_shape("2023-06-15-preview") == ApiShape::preview2023);
  CHECK(api_shape("2022-06-15-preview") == ApiShape::preview2022);
  CHECK(api_shape("") == ApiShape::preview2022);
}

TEST_CASE("FaultCounter: which sign or poll request gets which fault") {
  Options o;
  SECTION("every N counts sign and poll requests together") {
    o.throttle_every = 2;
    CHECK(faults_of(o, {true, false, true, false}) ==
          std::vector<Fault>{Fault::none, Fault::throttle, Fault::none, Fault::throttle});
  }
  SECTION("when two fire on one request, drop comes before throttle, fail and malformed") {
    o.drop_every = 3;
    o.throttle_every = 3;
    o.fail_every = 2;
    o.malformed_every = 1;
    CHECK(faults_of(o, {true, true, true, true}) ==
          std::vector<Fault>{Fault::malformed, Fault::fail, Fault::drop, Fault::fail});
  }
  SECTION("the poll faults count polls only and never hit a sign request") {
    o.malformed_polls_every = 2;
    o.drop_polls_every = 3;
    std::vector<bool> kinds{true, true, true, false, false, false, true, false};
    CHECK(faults_of(o, kinds) == std::vector<Fault>{Fault::none, Fault::none, Fault::none,
                                                    Fault::none, Fault::malformed, Fault::drop,
                                                    Fault::none, Fault::malformed});
  }
  SECTION("at capacity every request is refused, and still counted") {
    o.capacity = 2;
    o.throttle_every = 2;
    FaultCounter c;
    CHECK(c.next(o, true, 1) == Fault::none);
    CHECK(c.next(o, true, 2) == Fault::capacity);
    CHECK(c.next(o, true, 1) == Fault::none);
    CHECK(c.next(o, true, 0) == Fault::throttle);
    CHECK(c.requests == 4);
  }
  SECTION("no fault configured: none, ever") {
    CHECK(faults_of(o, std::vector<bool>(50, false)) == std::vector<Fault>(50, Fault::none));
  }
  CHECK(std::string(fault_name(Fault::none)).empty());
  CHECK(std::string(fault_name(Fault::malformed)) == "malformed");
}

TEST_CASE("answer bodies in the shape of each api-version") {
  SECTION("202 to sign") {
    json::value ga = sign_accepted_body(ApiShape::ga2024, "id1");
    CHECK(ga == json::parse(R"({"id":"id1","status":"NotStarted"})"));
    json::value p23 = sign_accepted_body(ApiShape::preview2023, "id1");
    CHECK(p23 ==
          json::parse(R"({"id":"id1","status":"InProgress","result":null,"errorResponse":null})"));
    json::value p22 = sign_accepted_body(ApiShape::preview2022, "id1");
    CHECK(p22 == json::parse(R"({"operationId":"id1","status":"InProgress","signature":null,
                                 "signingCertificate":null})"));
  }
  SECTION("200 to poll, running and done") {
    CHECK(poll_body(ApiShape::ga2024, "i", false, "S", "C") ==
          json::parse(R"({"id":"i","status":"Running"})"));
    CHECK(
        poll_body(ApiShape::ga2024, "i", true, "S", "C") ==
        json::parse(
            R"({"id":"i","status":"Succeeded","result":{"signature":"S","signingCertificate":"C"}})"));
    CHECK(poll_body(ApiShape::preview2023, "i", false, "S", "C") ==
          json::parse(R"({"id":"i","status":"InProgress","result":null,"errorResponse":null})"));
    CHECK(
        poll_body(ApiShape::preview2023, "i", true, "S", "C").at("result") ==
        json::parse(
            R"({"operationId":"i","status":"Succeeded","signature":"S","signingCertificate":"C"})"));
    CHECK(poll_body(ApiShape::preview2022, "i", false, "S", "C") ==
          json::parse(R"({"operationId":"i","status":"InProgress","signature":null,
                          "signingCertificate":null})"));
  }
  SECTION("200 to eku") {
    std::vector<std::string> ekus{"1.3.6.1.5.5.7.3.3", "1.3.6.1.4.1.311.97.1.0"};
    CHECK(
        eku_body(ApiShape::ga2024, ekus) ==
        json::parse(R"({"value":[{"eku":"1.3.6.1.5.5.7.3.3"},{"eku":"1.3.6.1.4.1.311.97.1.0"}]})"));
    CHECK(eku_body(ApiShape::preview2022, ekus) ==
          json::parse(R"({"value":[{"ekus":["1.3.6.1.5.5.7.3.3","1.3.6.1.4.1.311.97.1.0"]}]})"));
  }
}

TEST_CASE("double_base64: MIME base64 of 76 columns with CRLF, base64 again") {
  Bytes der = random_bytes(200);
  auto mime = base64_decode(double_base64(der));
  REQUIRE(mime);
  std::string text = to_string(*mime);
  CHECK(text.substr(76, 2) == "\r\n");
  CHECK(text.ends_with("\r\n"));
  CHECK(base64_decode(text) == der);
}

TEST_CASE("bearer_challenge: invalid_token only when a token was sent") {
  CHECK(bearer_challenge("https://h/t", "") == R"(Bearer authorization_uri="https://h/t")");
  CHECK(bearer_challenge("https://h/t", "The access token expired") ==
        R"(Bearer authorization_uri="https://h/t", error="invalid_token", )"
        R"(error_description="The access token expired")");
}
