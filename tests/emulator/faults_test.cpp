// Tests of the emulator's fault injection (Options, "Fault injection") over real connections:
// each fault changes the answers as documented.
#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <thread>

#include "common/digest.hpp"

#include "client.hpp"

namespace http = boost::beast::http;
namespace json = boost::json;
namespace fs = std::filesystem;
using namespace tsign;
using namespace tsign::emulator;
using namespace emu_test;

TEST_CASE("fault injection changes the answers as documented") {
  Bytes digest = hash(DigestAlg::sha256, as_bytes("faults"));

  SECTION("--throttle-every 2: every 2nd sign/poll is 429 with Retry-After: 1") {
    Options o = base_options();
    o.throttle_every = 2;
    Running emu(o);
    std::string token = access_token(emu.ep());
    CHECK(sign_request(emu.ep(), token, "RS256", digest).status == 202);
    Reply r = sign_request(emu.ep(), token, "RS256", digest);
    CHECK(r.status == 429);
    CHECK(r.headers["retry-after"] == "1");
    CHECK(sign_request(emu.ep(), token, "RS256", digest).status == 202);
  }
  SECTION("--capacity 2: of four requests in service together, two are 429") {
    Options o = base_options();
    o.capacity = 2;
    // Long enough that all four arrive while the first two are still being served.
    o.latency = std::chrono::milliseconds(2000);
    Running emu(o);
    std::string token = access_token(emu.ep());
    std::vector<unsigned> statuses(4);
    std::vector<std::thread> clients;
    for (std::size_t i = 0; i < statuses.size(); ++i)
      clients.emplace_back(
          [&, i] { statuses[i] = sign_request(emu.ep(), token, "RS256", digest).status; });
    for (auto& t : clients) t.join();
    CHECK(std::count(statuses.begin(), statuses.end(), 202u) == 2);
    CHECK(std::count(statuses.begin(), statuses.end(), 429u) == 2);
    // Served requests free their place: the next one is accepted.
    CHECK(sign_request(emu.ep(), token, "RS256", digest).status == 202);
  }
  SECTION("--fail-every 1: 503 with Retry-After: 1") {
    Options o = base_options();
    o.fail_every = 1;
    Running emu(o);
    std::string token = access_token(emu.ep());  // credentials are not affected
    Reply r = sign_request(emu.ep(), token, "RS256", digest);
    CHECK(r.status == 503);
    CHECK(r.headers["retry-after"] == "1");
  }
  SECTION("--drop-every 2: the connection closes without an answer") {
    Options o = base_options();
    o.drop_every = 2;
    Running emu(o);
    std::string token = access_token(emu.ep());
    Reply first = sign_request(emu.ep(), token, "RS256", digest);
    CHECK(first.status == 202);
    json::object body{{"signatureAlgorithm", "RS256"}, {"digest", base64_encode(digest)}};
    auto dropped = fetch(emu.ep(), {.method = http::verb::post,
                                    .target = profile_path(emu.ep()) + "/sign" + kApi,
                                    .headers = {{"Authorization", "Bearer " + token}},
                                    .body = json::serialize(body),
                                    .content_type = "application/json"});
    CHECK_FALSE(dropped.has_value());
  }
  SECTION("--malformed-every 1: 202 with a body that is not JSON") {
    Options o = base_options();
    o.malformed_every = 1;
    Running emu(o);
    Reply r = sign_request(emu.ep(), access_token(emu.ep()), "RS256", digest);
    CHECK(r.status == 202);
    boost::system::error_code ec;
    json::parse(r.body, ec);
    CHECK(ec);
  }
  SECTION("--malformed-polls-every 2 / --drop-polls-every 3: polls only, counting polls") {
    Options o = base_options();
    o.malformed_polls_every = 2;
    o.drop_polls_every = 3;
    o.polls_before_success = 10;
    Running emu(o);
    std::string token = access_token(emu.ep());
    // Sign requests are never hit and do not count.
    for (int i = 0; i < 3; ++i) CHECK(sign_request(emu.ep(), token, "RS256", digest).status == 202);
    Reply s = sign_request(emu.ep(), token, "RS256", digest);
    std::string id(s.json().at("operationId").as_string());
    Call poll{.target = profile_path(emu.ep()) + "/sign/" + id + kApi,
              .headers = {{"Authorization", "Bearer " + token}}};
    auto cut_short = [&] {
      Reply cut = must(fetch(emu.ep(), poll));
      boost::system::error_code ec;
      json::parse(cut.body, ec);
      return cut.status == 200 && ec;
    };
    CHECK(must(fetch(emu.ep(), poll)).json().at("status").as_string() == "InProgress");  // 1
    CHECK(cut_short());                                                                  // 2
    CHECK_FALSE(fetch(emu.ep(), poll).has_value());                                      // 3
    CHECK(cut_short());                                                                  // 4
    CHECK(must(fetch(emu.ep(), poll)).json().at("status").as_string() == "InProgress");  // 5
    // The log of the shared state directory holds other tests' lines too: this operation's.
    auto lines = log_lines(emu.ep());
    CHECK(std::count_if(lines.begin(), lines.end(), [&](const json::object& l) {
            return l.at("path").as_string().ends_with(id) && l.contains("fault");
          }) == 3);
  }
  SECTION("--tsa-fail-every 2: every 2nd time-stamp request is 503") {
    Options o = base_options();
    o.tsa_fail_every = 2;
    Running emu(o);
    auto [query, nonce] = timestamp_query(Bytes(32, 1), EVP_sha256());
    Call c{.method = http::verb::post,
           .target = "/",
           .body = to_string(query),
           .content_type = "application/timestamp-query",
           .tsa = true};
    CHECK(must(fetch(emu.ep(), c)).status == 200);
    CHECK(must(fetch(emu.ep(), c)).status == 503);
    CHECK(must(fetch(emu.ep(), c)).status == 200);
  }
  SECTION("--bad-signature: the signature does not verify for the digest sent") {
    Options o = base_options();
    o.bad_signature = true;
    Running emu(o);
    std::string token = access_token(emu.ep());
    Reply s = sign_request(emu.ep(), token, "RS256", digest);
    REQUIRE(s.status == 202);
    auto [done, n] =
        poll_until_done(emu.ep(), token, std::string(s.json().at("operationId").as_string()));
    auto chain = decode_chain(std::string(done.at("signingCertificate").as_string()));
    auto sig = base64_decode(done.at("signature").as_string());
    REQUIRE(sig);
    CHECK_FALSE(verify_digest_signature(chain[0].get(), digest, *sig, EVP_sha256()));
  }
  SECTION("--chain-without-eku: the leaf lacks codeSigning") {
    Options o = base_options();
    o.chain_without_eku = true;
    o.polls_before_success = 0;
    Running emu(o);
    std::string token = access_token(emu.ep());
    Reply s = sign_request(emu.ep(), token, "RS256", digest);
    auto [done, n] =
        poll_until_done(emu.ep(), token, std::string(s.json().at("operationId").as_string()));
    CHECK(n == 0);
    auto chain = decode_chain(std::string(done.at("signingCertificate").as_string()));
    auto ekus = ekus_of(chain[0].get());
    CHECK(std::find(ekus.begin(), ekus.end(), "1.3.6.1.5.5.7.3.3") == ekus.end());
    CHECK(std::find(ekus.begin(), ekus.end(), "1.3.6.1.4.1.311.97.1.0") != ekus.end());
  }
  SECTION("--forbid: 403 with an empty body") {
    Options o = base_options();
    o.forbid = true;
    Running emu(o);
    Reply r = sign_request(emu.ep(), access_token(emu.ep()), "RS256", digest);
    CHECK(r.status == 403);
    CHECK(r.body.empty());
  }
  SECTION("--latency-ms 300: answers come no sooner") {
    Options o = base_options();
    o.latency = std::chrono::milliseconds(300);
    Running emu(o);
    auto start = std::chrono::steady_clock::now();
    CHECK(github_token(emu.ep(), emu.ep().id_token_request_token).status == 200);
    CHECK(std::chrono::steady_clock::now() - start >= std::chrono::milliseconds(300));
  }
}
