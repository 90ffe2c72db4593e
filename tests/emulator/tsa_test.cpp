// Tests of the emulator's RFC 3161 time-stamp authority (src/emulator/tsa.cpp).
#include <catch2/catch.hpp>

#include <openssl/evp.h>
#include <openssl/ts.h>

#include "common/ossl.hpp"
#include "emulator/pki.hpp"
#include "emulator/tsa.hpp"

#include "client.hpp"

namespace http = boost::beast::http;
namespace json = boost::json;
namespace fs = std::filesystem;
using namespace tsign;
using namespace tsign::emulator;
using namespace emu_test;

TEST_CASE("RFC 3161 time-stamps verify against tsa-root.pem") {
  Running emu(base_options());
  const Endpoints& ep = emu.ep();
  for (const EVP_MD* md : {EVP_sha256(), EVP_sha384(), EVP_sha512()}) {
    Bytes imprint(static_cast<std::size_t>(EVP_MD_get_size(md)), 0x5a);
    auto [query, nonce] = timestamp_query(imprint, md);
    Reply r = must(fetch(ep, {.method = http::verb::post,
                              .target = "/",
                              .body = to_string(query),
                              .content_type = "application/timestamp-query",
                              .tsa = true}));
    REQUIRE(r.status == 200);
    CHECK(r.headers["content-type"] == "application/timestamp-reply");
    CHECK(timestamp_verifies(ep, query, r.body));
    // Another imprint must not verify against this reply: the check is real.
    Bytes other(imprint.size(), 0x33);
    CHECK_FALSE(timestamp_verifies(ep, timestamp_query(other, md).first, r.body));
  }
  Reply wrong_type = must(fetch(ep, {.method = http::verb::post,
                                     .target = "/",
                                     .body = "x",
                                     .content_type = "text/plain",
                                     .tsa = true}));
  CHECK(wrong_type.status == 415);
}

// The time-stamp authority without a socket (src/emulator/tsa.hpp).

namespace {
Pki shared_pki() {
  fs::create_directories(shared_state_dir());  // as the Server would
  return load_or_create_pki({.dir = shared_state_dir(), .account = "a", .profile = "p"});
}

StringRequest tsa_request(http::verb method, const std::string& content_type,
                          const std::string& body) {
  StringRequest req{method, "/", 11};
  if (!content_type.empty()) req.set(http::field::content_type, content_type);
  req.body() = body;
  return req;
}

long reply_status(const std::string& der) {
  const unsigned char* p = reinterpret_cast<const unsigned char*>(der.data());
  OsslPtr<TS_RESP, TS_RESP_free> resp(d2i_TS_RESP(nullptr, &p, static_cast<long>(der.size())));
  REQUIRE(resp);
  return ASN1_INTEGER_get(TS_STATUS_INFO_get0_status(TS_RESP_get_status_info(resp.get())));
}
}  // namespace

// One test case: its first section generates the state directory's keys (seconds), the second
// reuses them.
TEST_CASE("the time-stamp authority without a socket: methods, media type, faults, bad requests") {
  Pki pki = shared_pki();
  SECTION("TsaService: POST only, timestamp-query only, every Nth fails when told") {
    Options o;
    o.tsa_fail_every = 3;
    TsaService tsa(o, pki.tsa.get(), pki.tsa_key.get());
    auto [query, nonce] = timestamp_query(Bytes(32, 9), EVP_sha256());
    auto good = tsa_request(http::verb::post, "application/timestamp-query", to_string(query));

    Answer get = tsa.handle(tsa_request(http::verb::get, "", ""));
    CHECK(get.res.result() == http::status::method_not_allowed);
    CHECK(get.res[http::field::allow] == "POST");
    CHECK(get.kind == "tsa");

    Answer ok = tsa.handle(good);  // the 1st request counted
    CHECK(ok.res.result() == http::status::ok);
    CHECK(reply_status(ok.res.body()) == TS_STATUS_GRANTED);
    CHECK(tsa.handle(tsa_request(http::verb::post, "text/plain", "x")).res.result() ==
          http::status::unsupported_media_type);  // the 2nd
    Answer failed = tsa.handle(good);             // the 3rd
    CHECK(failed.res.result() == http::status::service_unavailable);
    CHECK(failed.fault == "tsa-fail");
    CHECK(tsa.handle(good).res.result() == http::status::ok);
  }
  SECTION("timestamp_reply: a request OpenSSL cannot parse gets a rejection, not an exception") {
    Bytes reply =
        timestamp_reply(as_bytes("not a TimeStampReq"), pki.tsa.get(), pki.tsa_key.get(), 1);
    CHECK(reply_status(to_string(reply)) == TS_STATUS_REJECTION);
  }
}
