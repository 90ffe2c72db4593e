// The RFC 3161 client against a time-stamp authority built here with OpenSSL's TS_RESP_CTX (a
// TSA certificate with the critical timeStamping EKU, issued by a test root), including
// answers that must be refused: wrong nonce, wrong imprint, rejection, no token, garbage.
#include <catch2/catch.hpp>

#include <boost/asio/io_context.hpp>

#include <openssl/objects.h>
#include <openssl/ts.h>

#include "authenticode/timestamp.hpp"
#include "common/error.hpp"
#include "helpers.hpp"
#include "support/test_server.hpp"
#include "tsa/timestamp_client.hpp"

namespace asio = boost::asio;
using namespace std::chrono_literals;
using namespace tsign;
using namespace tsign::test;
using namespace tsign::authenticode;
using tsign::tsa::TimestampClient;

namespace {

using TsReqPtr = OsslPtr<TS_REQ, TS_REQ_free>;
using TsRespPtr = OsslPtr<TS_RESP, TS_RESP_free>;
using TsRespCtxPtr = OsslPtr<TS_RESP_CTX, TS_RESP_CTX_free>;

template <class T, class F>
Bytes der_of(T* obj, F i2d) {
  int n = i2d(obj, nullptr);
  REQUIRE(n > 0);
  Bytes out(static_cast<std::size_t>(n));
  unsigned char* p = out.data();
  i2d(obj, &p);
  return out;
}

TsReqPtr parse_req(ByteView der) {
  const unsigned char* p = der.data();
  TsReqPtr r(d2i_TS_REQ(nullptr, &p, static_cast<long>(der.size())));
  REQUIRE(r);
  return r;
}

// A time-stamp authority: what `openssl ts -reply` does, in-process.
struct Tsa {
  TestCa root{"test TSA root"};
  IssuedCert cert;
  std::vector<const EVP_MD*> digests = {EVP_sha256(), EVP_sha384(), EVP_sha512()};

  Tsa() {
    CertSpec spec;
    spec.common_name = "test TSA";
    spec.extended_key_usage = "critical,timeStamping";
    cert = root.issue(spec);
  }

  Bytes reply(ByteView request_der) const {
    TsRespCtxPtr ctx(TS_RESP_CTX_new());
    REQUIRE(TS_RESP_CTX_set_signer_cert(ctx.get(), cert.cert.get()) == 1);
    REQUIRE(TS_RESP_CTX_set_signer_key(ctx.get(), cert.key.get()) == 1);
    REQUIRE(TS_RESP_CTX_set_signer_digest(ctx.get(), EVP_sha256()) == 1);
    OsslPtr<ASN1_OBJECT, ASN1_OBJECT_free> policy(OBJ_txt2obj("1.3.6.1.4.1.4146.2.3", 1));
    REQUIRE(TS_RESP_CTX_set_def_policy(ctx.get(), policy.get()) == 1);
    for (const EVP_MD* md : digests) REQUIRE(TS_RESP_CTX_add_md(ctx.get(), md) == 1);
    BioPtr in(BIO_new_mem_buf(request_der.data(), static_cast<int>(request_der.size())));
    TsRespPtr resp(TS_RESP_create_response(ctx.get(), in.get()));
    REQUIRE(resp);
    return der_of(resp.get(), i2d_TS_RESP);
  }

  // Answers a request that differs from `req` by `change` (as a confused or replaying TSA would).
  template <class F>
  Bytes reply_altered(ByteView req_der, F change) const {
    auto r = parse_req(req_der);
    change(r.get());
    return reply(der_of(r.get(), i2d_TS_REQ));
  }

  // Independent check of a token: signature by the TSA chaining to its root, imprint, nonce.
  bool token_verifies(const Bytes& token_der, const TimestampRequest& req) const {
    const unsigned char* p = token_der.data();
    PKCS7Ptr token(d2i_PKCS7(nullptr, &p, static_cast<long>(token_der.size())));
    if (!token) return false;
    auto r = parse_req(req.der);
    OsslPtr<TS_VERIFY_CTX, TS_VERIFY_CTX_free> vctx(TS_REQ_to_TS_VERIFY_CTX(r.get(), nullptr));
    X509_STORE* store = X509_STORE_new();
    X509_STORE_add_cert(store, root.cert());
    TS_VERIFY_CTX_set_store(vctx.get(), store);  // owned by vctx from here
    TS_VERIFY_CTX_add_flags(vctx.get(), TS_VFY_SIGNATURE);
    return TS_RESP_verify_token(vctx.get(), token.get()) == 1;
  }
};

const Bytes kSignature = [] {
  Bytes s(384);
  for (std::size_t i = 0; i < s.size(); ++i) s[i] = static_cast<std::uint8_t>(i * 7 + 1);
  return s;
}();

std::string file_error(const std::function<void()>& f) {
  try {
    f();
  } catch (const FileError& e) {
    return e.what();
  }
  FAIL("no FileError");
  return {};
}

}  // namespace

TEST_CASE("a time-stamp request carries the imprint, a nonce and certReq", "[timestamp]") {
  for (auto alg : {DigestAlg::sha256, DigestAlg::sha384, DigestAlg::sha512}) {
    auto req = make_timestamp_request(kSignature, alg);
    auto r = parse_req(req.der);
    CHECK(TS_REQ_get_version(r.get()) == 1);
    CHECK(TS_REQ_get_cert_req(r.get()) == 1);
    TS_MSG_IMPRINT* imp = TS_REQ_get_msg_imprint(r.get());
    const ASN1_OBJECT* oid = nullptr;
    X509_ALGOR_get0(&oid, nullptr, nullptr, TS_MSG_IMPRINT_get_algo(imp));
    CHECK(OBJ_obj2nid(oid) == EVP_MD_get_type(evp_md(alg)));
    ASN1_OCTET_STRING* msg = TS_MSG_IMPRINT_get_msg(imp);
    Bytes got(ASN1_STRING_get0_data(msg), ASN1_STRING_get0_data(msg) + ASN1_STRING_length(msg));
    CHECK(got == hash(alg, kSignature));  // of the signature value, not of anything else
    REQUIRE(TS_REQ_get_nonce(r.get()));
    CHECK(!req.nonce.empty());
    CHECK(req.nonce.size() <= 8);
  }
  // Fresh nonces.
  CHECK(make_timestamp_request(kSignature, DigestAlg::sha256).nonce !=
        make_timestamp_request(kSignature, DigestAlg::sha256).nonce);
}

TEST_CASE("a granted answer yields a token that verifies", "[timestamp]") {
  Tsa tsa;
  auto req = make_timestamp_request(kSignature, DigestAlg::sha256);
  auto token = check_timestamp_response(tsa.reply(req.der), req, kSignature, DigestAlg::sha256);
  CHECK(tsa.token_verifies(token, req));
}

TEST_CASE("answers that must be refused", "[timestamp]") {
  Tsa tsa;
  const auto alg = DigestAlg::sha256;
  auto req = make_timestamp_request(kSignature, alg);

  SECTION("a different nonce") {
    auto reply = tsa.reply_altered(req.der, [](TS_REQ* r) {
      OsslPtr<ASN1_INTEGER, ASN1_INTEGER_free> n(ASN1_INTEGER_new());
      ASN1_INTEGER_set(n.get(), 42);
      TS_REQ_set_nonce(r, n.get());
    });
    CHECK_THAT(file_error([&] { check_timestamp_response(reply, req, kSignature, alg); }),
               Catch::Contains("different nonce"));
  }
  SECTION("no nonce") {
    // The same request without its nonce.
    auto sent = parse_req(req.der);
    TsReqPtr bare(TS_REQ_new());
    TS_REQ_set_version(bare.get(), 1);
    TS_REQ_set_msg_imprint(bare.get(), TS_REQ_get_msg_imprint(sent.get()));
    TS_REQ_set_cert_req(bare.get(), 1);
    auto reply = tsa.reply(der_of(bare.get(), i2d_TS_REQ));
    CHECK_THAT(file_error([&] { check_timestamp_response(reply, req, kSignature, alg); }),
               Catch::Contains("no nonce"));
  }
  SECTION("the imprint of something else") {
    // The TSA stamps the digest of another signature (same request otherwise).
    auto other = make_timestamp_request(Bytes(384, 0xAB), alg);
    auto reply = tsa.reply_altered(req.der, [&](TS_REQ* r) {
      auto o = parse_req(other.der);
      TS_REQ_set_msg_imprint(r, TS_REQ_get_msg_imprint(o.get()));
    });
    CHECK_THAT(file_error([&] { check_timestamp_response(reply, req, kSignature, alg); }),
               Catch::Contains("another digest"));
  }
  SECTION("an imprint of another algorithm") {
    auto reply = tsa.reply(req.der);
    CHECK_THAT(
        file_error([&] { check_timestamp_response(reply, req, kSignature, DigestAlg::sha384); }),
        Catch::Contains("another algorithm"));
  }
  SECTION("a rejection, with the authority's reason") {
    Tsa picky;
    picky.digests = {EVP_sha512()};  // refuses SHA-256 imprints
    auto msg =
        file_error([&] { check_timestamp_response(picky.reply(req.der), req, kSignature, alg); });
    CHECK_THAT(msg, Catch::Contains("refused the request: rejection"));
    CHECK_THAT(msg, Catch::Contains("badAlg"));
    CHECK_THAT(msg, Catch::Contains("not supported"));  // OpenSSL's status text
  }
  SECTION("granted without a token") {
    OsslPtr<TS_RESP, TS_RESP_free> resp(TS_RESP_new());
    OsslPtr<TS_STATUS_INFO, TS_STATUS_INFO_free> si(TS_STATUS_INFO_new());
    TS_STATUS_INFO_set_status(si.get(), TS_STATUS_GRANTED);
    TS_RESP_set_status_info(resp.get(), si.get());
    auto reply = der_of(resp.get(), i2d_TS_RESP);
    CHECK_THAT(file_error([&] { check_timestamp_response(reply, req, kSignature, alg); }),
               Catch::Contains("no time-stamp token"));
  }
  SECTION("garbage and trailing bytes") {
    CHECK_THAT(file_error([&] {
                 check_timestamp_response(as_bytes("<html>busy</html>"), req, kSignature, alg);
               }),
               Catch::Contains("not an RFC 3161 TimeStampResp"));
    auto reply = tsa.reply(req.der);
    reply.push_back(0);
    CHECK_THAT(file_error([&] { check_timestamp_response(reply, req, kSignature, alg); }),
               Catch::Contains("trailing bytes"));
  }
}

TEST_CASE("TimestampClient over HTTP", "[timestamp][http]") {
  Tsa tsa;
  TestServer server;
  server.on("/ts", [&](const Request& r) {
    return Reply::bytes(200, "application/timestamp-reply", to_string(tsa.reply(as_bytes(r.body))));
  });
  server.on("/down", [](const Request&) { return Reply::text(503, "maintenance"); });
  asio::io_context ioc;
  http::ClientOptions opts;
  opts.retry.base_delay = 1ms;
  opts.retry.max_attempts = 2;
  http::Client client(ioc.get_executor(), opts);

  SECTION("a token for the signature") {
    TimestampClient tc(client, server.url("/ts"), DigestAlg::sha384);
    Bytes token = run_coro(ioc, tc.stamp(kSignature));
    auto seen = server.requests("/ts");
    REQUIRE(seen.size() == 1);
    CHECK(seen[0].method == "POST");
    CHECK(seen[0].header("content-type") == "application/timestamp-query");
    CHECK(seen[0].header("accept") == "application/timestamp-reply");
    // Rebuild what was sent, and check the token independently against it.
    TimestampRequest sent;
    sent.der.assign(seen[0].body.begin(), seen[0].body.end());
    CHECK(tsa.token_verifies(token, sent));
  }
  SECTION("an authority that stays unavailable") {
    TimestampClient tc(client, server.url("/down"), DigestAlg::sha256);
    auto msg = file_error([&] { run_coro(ioc, tc.stamp(kSignature)); });
    CHECK(msg == "time-stamp authority " + server.url("/down") + " answered HTTP 503");
    CHECK(server.requests("/down").size() == 2);  // retried per the client's policy
  }
  SECTION("an authority answering garbage") {
    server.on("/ts", [](const Request&) { return Reply::text(200, "hello"); });
    TimestampClient tc(client, server.url("/ts"), DigestAlg::sha256);
    auto msg = file_error([&] { run_coro(ioc, tc.stamp(kSignature)); });
    CHECK_THAT(msg, Catch::StartsWith("time-stamp authority " + server.url("/ts") + ": "));
    CHECK_THAT(msg, Catch::Contains("not an RFC 3161 TimeStampResp"));
  }
}
