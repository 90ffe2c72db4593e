// The Trusted Signing signer against a scripted loopback HTTPS fake of the service: the sign /
// poll flow, failures, malformed answers, refusals, Operation-Location, both api-versions and
// the fallback between them, and that the bearer token never appears in an error message.
#include <catch2/catch.hpp>

#include <cstdlib>
#include <future>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/json.hpp>

#include "common/error.hpp"
#include "http/client.hpp"
#include "signer/trusted_signing.hpp"
#include "support/coro.hpp"
#include "support/fast_client.hpp"
#include "support/pki.hpp"
#include "support/test_server.hpp"

using namespace tsign;
using namespace tsign::signer;
namespace asio = boost::asio;
namespace json = boost::json;

namespace {

constexpr const char* kToken = "bearer-token-SECRET-123";

struct FixedToken : auth::TokenSource {
  int calls = 0;
  bool rotate = false;  // a new token on every call: "kToken-1", "kToken-2", ...
  // Non-zero: the first token expires this soon (while its request is on the way).
  std::chrono::milliseconds first_life{0};
  std::vector<std::string> invalidated;
  asio::awaitable<auth::AccessToken> get_token() override {
    ++calls;
    auto now = std::chrono::system_clock::now();
    std::string t = rotate ? std::string(kToken) + "-" + std::to_string(calls) : kToken;
    co_return auth::AccessToken{Secret(t), calls == 1 && first_life.count() > 0
                                               ? now + first_life
                                               : now + std::chrono::hours(1)};
  }
  void invalidate(const Secret& rejected) override { invalidated.push_back(rejected.reveal()); }
  std::string name() const override { return "fixed"; }
};

std::string bearer(const std::string& token) {
  return "Bearer " + token;
}

const std::string kBase = "/codesigningaccounts/acct-1/certificateprofiles/prof-1";

struct FakeService {
  test::TestServer server{{.tls = true}};
  asio::io_context io;
  http::ClientOptions opts = test::fast_client_options(server);
  http::Client client{io.get_executor(), opts};
  NullLog log;
  FixedToken tokens;
  test::TestChain chain;
  std::unique_ptr<Signer> signer;

  // The preview by default: most cases here are about its answer shapes, not the version choice.
  explicit FakeService(std::optional<ApiVersion> api = ApiVersion::preview_2022_06_15) {
    // The process's own environment: the signer reads TSIGN_ALLOWED_HOSTS like the product.
#ifdef _WIN32
    _putenv_s("TSIGN_ALLOWED_HOSTS", "127.0.0.1");
#else
    setenv("TSIGN_ALLOWED_HOSTS", "127.0.0.1", 1);
#endif
    TrustedSigningSettings s{server.url("/"), "acct-1", "prof-1", "corr-42", api};
    signer = make_trusted_signing_signer(s, client, tokens, log);
  }

  std::string succeeded(const std::string& op = "op-1") const {
    Bytes p7 = test::certs_only_pkcs7(
        {chain.root.cert.get(), chain.leaf.cert.get(), chain.inter.cert.get()});
    std::string cert = base64_encode(as_bytes(test::mime_base64(p7)));
    return R"({"operationId":")" + op +
           R"(","status":"Succeeded","signature":"AQIDBA==","signingCertificate":")" + cert +
           R"("})";
  }
  static std::string in_progress(const std::string& op = "op-1") {
    return R"({"operationId":")" + op +
           R"(","status":"InProgress","signature":null,"signingCertificate":null})";
  }
  // The GA (2024-06-15) shapes: an Azure Core operation with the result wrapped.
  std::string ga_succeeded(const std::string& op = "op-1") const {
    Bytes p7 = test::certs_only_pkcs7(
        {chain.root.cert.get(), chain.leaf.cert.get(), chain.inter.cert.get()});
    std::string cert = base64_encode(as_bytes(test::mime_base64(p7)));
    return R"({"id":")" + op + R"(","status":"Succeeded","result":{"signature":"AQIDBA==",)" +
           R"("signingCertificate":")" + cert + R"("}})";
  }
  // `n` sign() calls in flight at once; the number that succeeded, and the errors of the others.
  std::pair<int, std::vector<std::string>> sign_concurrently(int n) {
    std::vector<std::future<SignResult>> results;
    for (int i = 0; i < n; ++i)
      results.push_back(asio::co_spawn(
          io,
          signer->sign(hash(DigestAlg::sha256, as_bytes("file " + std::to_string(i))),
                       DigestAlg::sha256),
          asio::use_future));
    io.restart();
    io.run();
    int ok = 0;
    std::vector<std::string> errors;
    for (auto& f : results) {
      try {
        ok += f.get().chain.size() == 3;
      } catch (const std::exception& e) {
        errors.emplace_back(e.what());
      }
    }
    return {ok, errors};
  }
  SignResult sign(DigestAlg alg = DigestAlg::sha256) {
    Bytes digest = hash(alg, as_bytes("signed attributes"));
    return test::run_coro(io, signer->sign(digest, alg));
  }
  // Runs sign() expecting an error; returns it after checking the token is not in its text.
  template <typename E>
  E sign_error() {
    try {
      sign();
    } catch (const E& e) {
      CHECK(std::string(e.what()).find(kToken) == std::string::npos);
      return e;
    }
    FAIL("no error of the expected type");
    throw;
  }
};

}  // namespace

TEST_CASE("sign, poll InProgress three times, then Succeeded", "[signer][network]") {
  FakeService svc;
  svc.server.enqueue(kBase + "/sign", test::Reply::json(202, FakeService::in_progress()));
  for (int i = 0; i < 3; ++i)
    svc.server.enqueue(kBase + "/sign/op-1", test::Reply::json(200, FakeService::in_progress()));
  svc.server.enqueue(kBase + "/sign/op-1", test::Reply::json(200, svc.succeeded()));

  SignResult r = svc.sign(DigestAlg::sha384);
  CHECK(r.signature == Bytes{1, 2, 3, 4});
  REQUIRE(r.chain.size() == 3);
  CHECK(X509_cmp(r.chain[0].get(), svc.chain.leaf.cert.get()) == 0);
  CHECK(X509_cmp(r.chain[1].get(), svc.chain.inter.cert.get()) == 0);

  auto posts = svc.server.requests(kBase + "/sign");
  REQUIRE(posts.size() == 1);
  CHECK(posts[0].method == "POST");
  CHECK(posts[0].target == kBase + "/sign?api-version=2022-06-15-preview");
  CHECK(posts[0].header("authorization") == std::string("Bearer ") + kToken);
  CHECK(posts[0].header("x-correlation-id") == "corr-42");
  CHECK(posts[0].header("content-type") == "application/json");
  auto body = json::parse(posts[0].body).as_object();
  CHECK(body.at("signatureAlgorithm").as_string() == "RS384");
  CHECK(body.at("digest").as_string() ==
        base64_encode(hash(DigestAlg::sha384, as_bytes("signed attributes"))));

  auto polls = svc.server.requests(kBase + "/sign/op-1");
  REQUIRE(polls.size() == 4);
  for (const auto& p : polls) {
    CHECK(p.method == "GET");
    CHECK(p.target == kBase + "/sign/op-1?api-version=2022-06-15-preview");
    CHECK(p.header("authorization") == std::string("Bearer ") + kToken);
  }
  // The token is asked of the source for every request (the source caches it).
  CHECK(svc.tokens.calls == 5);
}

TEST_CASE("the wrapped 2023-06-15-preview answer shape is understood", "[signer][network]") {
  FakeService svc;
  svc.server.enqueue(kBase + "/sign",
                     test::Reply::json(202, R"({"id":"op-9","status":"Running","result":null})"));
  std::string inner = svc.succeeded("op-9");
  svc.server.enqueue(
      kBase + "/sign/op-9",
      test::Reply::json(200, R"({"id":"op-9","status":"Succeeded","result":)" + inner + "}"));
  SignResult r = svc.sign();
  CHECK(r.signature == Bytes{1, 2, 3, 4});
  CHECK(r.chain.size() == 3);
}

TEST_CASE("Failed is a FileError with the status and the service's errorDetail",
          "[signer][network]") {
  FakeService svc;
  svc.server.enqueue(kBase + "/sign", test::Reply::json(202, FakeService::in_progress()));
  svc.server.enqueue(
      kBase + "/sign/op-1",
      test::Reply::json(
          200,
          R"({"operationId":"op-1","status":"Failed","errorDetail":{"code":"InternalError","message":"the HSM said no","target":null}})"));
  auto e = svc.sign_error<FileError>();
  std::string m = e.what();
  CHECK(e.code() == ExitCode::file_failed);
  CHECK(m.find("Failed") != std::string::npos);
  CHECK(m.find("InternalError: the HSM said no") != std::string::npos);
}

TEST_CASE("a poll answer cut short is polled again, always malformed is a FileError",
          "[signer][network]") {
  // The signature is paid for once the sign request is accepted: the next poll returns it.
  FakeService once;
  once.server.enqueue(kBase + "/sign", test::Reply::json(202, FakeService::in_progress()));
  once.server.enqueue(kBase + "/sign/op-1", test::Reply::json(200, R"({"operationId":"op-1","st)"));
  once.server.enqueue(kBase + "/sign/op-1", test::Reply::json(200, once.succeeded()));
  CHECK(once.sign().chain.size() == 3);
  CHECK(once.server.requests(kBase + "/sign").size() == 1);
  CHECK(once.server.requests(kBase + "/sign/op-1").size() == 2);

  // Malformed every time: reported once the client's failure budget is spent.
  FakeService svc;
  svc.server.enqueue(kBase + "/sign", test::Reply::json(202, FakeService::in_progress()));
  svc.server.on(kBase + "/sign/op-1", [](const test::Request&) {
    return test::Reply::text(200, "{\"operationId\": oops");
  });
  auto e = svc.sign_error<FileError>();
  CHECK_THAT(e.what(), Catch::Contains("the signing service sent a malformed answer"));
  CHECK(svc.server.requests(kBase + "/sign/op-1").size() ==
        static_cast<std::size_t>(svc.opts.retry.max_attempts));

  // A sign answer cut short is not a reason to ask for a second signature.
  FakeService cut;
  cut.server.enqueue(kBase + "/sign", test::Reply::json(202, R"({"operationId":"op-1","sta)"));
  CHECK_THROWS_AS(cut.sign(), FileError);
  CHECK(cut.server.requests(kBase + "/sign").size() == 1);

  FakeService svc2;
  svc2.server.enqueue(kBase + "/sign", test::Reply::json(202, svc2.succeeded()));
  // Succeeded, but the signature is not base64.
  svc2.server.enqueue(
      kBase + "/sign",
      test::Reply::json(
          202,
          R"({"operationId":"x","status":"Succeeded","signature":"!!","signingCertificate":"AA=="})"));
  CHECK(svc2.sign().chain.size() == 3);  // a synchronous Succeeded needs no poll
  CHECK(svc2.server.requests(kBase + "/sign/op-1").empty());
  CHECK_THROWS_AS(svc2.sign(), FileError);
}

TEST_CASE("401/403 with an empty body name the account, the profile and the causes",
          "[signer][network]") {
  for (unsigned status : {401u, 403u}) {
    FakeService svc;
    svc.server.enqueue(kBase + "/sign", test::Reply::text(status, ""));
    auto e = svc.sign_error<AuthError>();
    std::string m = e.what();
    CHECK(e.code() == ExitCode::auth);
    CHECK(m.find(std::to_string(status)) != std::string::npos);
    CHECK(m.find("acct-1") != std::string::npos);
    CHECK(m.find("prof-1") != std::string::npos);
    CHECK(m.find("Artifact Signing Certificate Profile Signer") != std::string::npos);
    CHECK(m.find("Trusted Signing Certificate Profile Signer") != std::string::npos);
    CHECK(m.find("region") != std::string::npos);
    // About the identity, not the token: not sent again.
    CHECK(svc.server.requests(kBase + "/sign").size() == 1);
  }
}

namespace {
// What Entra-protected Azure services answer for an expired bearer token (RFC 6750 §3.1).
test::Reply token_expired() {
  test::Reply r = test::Reply::json(
      401, R"({"errorDetail":{"code":"Unauthorized","message":"The access token expired."}})");
  r.headers.push_back({"WWW-Authenticate",
                       R"(Bearer authorization_uri="https://login.example/t", )"
                       R"(error="invalid_token", error_description="The access token expired")"});
  return r;
}
}  // namespace

TEST_CASE("every attempt carries the token the source has when it is sent", "[signer][network]") {
  FakeService svc;
  svc.tokens.rotate = true;
  svc.server.enqueue(kBase + "/sign", test::Reply::text(503, "busy"));
  svc.server.enqueue(kBase + "/sign", test::Reply::json(202, FakeService::in_progress()));
  svc.server.enqueue(kBase + "/sign/op-1", {.status = 429, .headers = {{"Retry-After", "0"}}});
  svc.server.enqueue(kBase + "/sign/op-1", test::Reply::json(200, svc.succeeded()));
  CHECK(svc.sign().chain.size() == 3);
  auto posts = svc.server.requests(kBase + "/sign");
  auto polls = svc.server.requests(kBase + "/sign/op-1");
  REQUIRE(posts.size() == 2);
  REQUIRE(polls.size() == 2);
  CHECK(posts[0].header("authorization") == bearer(std::string(kToken) + "-1"));
  CHECK(posts[1].header("authorization") == bearer(std::string(kToken) + "-2"));
  CHECK(polls[0].header("authorization") == bearer(std::string(kToken) + "-3"));
  CHECK(polls[1].header("authorization") == bearer(std::string(kToken) + "-4"));
}

TEST_CASE("a 401 for an expired token: a new token, and the request once more",
          "[signer][network]") {
  SECTION("the service says the token expired") {
    FakeService svc;
    svc.tokens.rotate = true;
    svc.server.enqueue(kBase + "/sign", token_expired());
    svc.server.enqueue(kBase + "/sign", test::Reply::json(202, FakeService::in_progress()));
    svc.server.enqueue(kBase + "/sign/op-1", token_expired());
    svc.server.enqueue(kBase + "/sign/op-1", test::Reply::json(200, svc.succeeded()));
    CHECK(svc.sign().chain.size() == 3);
    auto posts = svc.server.requests(kBase + "/sign");
    REQUIRE(posts.size() == 2);
    CHECK(posts[1].header("authorization") == bearer(std::string(kToken) + "-2"));
    CHECK(svc.tokens.invalidated ==
          std::vector<std::string>{std::string(kToken) + "-1", std::string(kToken) + "-3"});
  }
  SECTION("the token expired on the way (its own expiry has passed): a bare 401 is enough") {
    FakeService svc;
    svc.tokens.rotate = true;
    svc.tokens.first_life = std::chrono::milliseconds(100);
    test::Reply late = test::Reply::text(401, "");
    late.delay = std::chrono::milliseconds(300);
    svc.server.enqueue(kBase + "/sign", late);
    svc.server.enqueue(kBase + "/sign", test::Reply::json(202, svc.succeeded()));
    CHECK(svc.sign().chain.size() == 3);
    CHECK(svc.server.requests(kBase + "/sign").size() == 2);
    CHECK(svc.tokens.invalidated == std::vector<std::string>{std::string(kToken) + "-1"});
  }
  SECTION("refused again with the new token: exit 3, and the message does not blame the role") {
    FakeService svc;
    svc.tokens.rotate = true;
    svc.server.enqueue(kBase + "/sign", token_expired());
    svc.server.enqueue(kBase + "/sign", token_expired());
    auto e = svc.sign_error<AuthError>();
    std::string m = e.what();
    CHECK(e.code() == ExitCode::auth);
    CHECK_THAT(m, Catch::Contains("expired or invalid") && Catch::Contains("clock") &&
                      Catch::Contains("acct-1"));
    CHECK_THAT(m, !Catch::Contains("Certificate Profile Signer"));
    CHECK(svc.server.requests(kBase + "/sign").size() == 2);
  }
}

TEST_CASE("404 on sign is a configuration error (exit 2)", "[signer][network]") {
  FakeService svc;
  svc.server.enqueue(
      kBase + "/sign",
      test::Reply::json(404,
                        R"({"errorDetail":{"code":"NotFound","message":"profile not found"}})"));
  auto e = svc.sign_error<Error>();
  CHECK(e.code() == ExitCode::input);
  CHECK_THAT(e.what(), Catch::Contains("prof-1") && Catch::Contains("profile not found"));
}

TEST_CASE("Operation-Location is followed only on the endpoint's own host", "[signer][network]") {
  SECTION("another host: ignored, the token is not sent there") {
    FakeService svc;
    // "localhost" reaches the same loopback server, so a leak would be recorded.
    test::Reply accepted = test::Reply::json(202, FakeService::in_progress());
    accepted.headers.push_back({"Operation-Location", svc.server.url("/stolen", "localhost")});
    svc.server.enqueue(kBase + "/sign", accepted);
    svc.server.enqueue(kBase + "/sign/op-1", test::Reply::json(200, svc.succeeded()));
    svc.server.on("/stolen",
                  [&](const test::Request&) { return test::Reply::json(200, svc.succeeded()); });
    CHECK(svc.sign().chain.size() == 3);
    CHECK(svc.server.requests("/stolen").empty());
    CHECK(svc.server.requests(kBase + "/sign/op-1").size() == 1);
  }
  SECTION("a URL that only parses as the same origin: ignored") {
    FakeService svc;
    test::Reply accepted = test::Reply::json(202, FakeService::in_progress());
    // Boost.URL 1.81 reads host 127.0.0.1, this port and the path "x/stolen"; as written it is
    // no URL of the endpoint's origin at all.
    accepted.headers.push_back(
        {"Operation-Location", "https://127.0.0.1:" + std::to_string(svc.server.port()) +
                                   "x/stolen?api-version=2022-06-15-preview"});
    svc.server.enqueue(kBase + "/sign", accepted);
    svc.server.enqueue(kBase + "/sign/op-1", test::Reply::json(200, svc.succeeded()));
    CHECK(svc.sign().chain.size() == 3);
    CHECK(svc.server.requests(kBase + "/sign/op-1").size() == 1);
  }
  SECTION("the same host: followed") {
    FakeService svc;
    test::Reply accepted = test::Reply::json(202, FakeService::in_progress());
    accepted.headers.push_back({"Operation-Location", svc.server.url("/ops/op-1?api-version=x")});
    accepted.headers.push_back({"Retry-After", "0"});
    svc.server.enqueue(kBase + "/sign", accepted);
    svc.server.enqueue("/ops/op-1", test::Reply::json(200, svc.succeeded()));
    CHECK(svc.sign().chain.size() == 3);
    auto polls = svc.server.requests("/ops/op-1");
    REQUIRE(polls.size() == 1);
    CHECK(polls[0].target == "/ops/op-1?api-version=x");
  }
}

TEST_CASE("the endpoint is checked before anything is sent", "[signer][network]") {
  asio::io_context io;
  http::Client client(io.get_executor(), {});
  FixedToken tokens;
  NullLog log;
  TrustedSigningSettings s{"https://evil.example/", "a", "p", ""};
  CHECK_THROWS_AS(make_trusted_signing_signer(s, client, tokens, log), InputError);
  CHECK(tokens.calls == 0);
}

// ---- api-versions -------------------------------------------------------------------------------

TEST_CASE("automatic: the GA contract (2024-06-15) first, its poll in the same version",
          "[signer][network][api-version]") {
  FakeService svc(std::nullopt);
  svc.server.enqueue(kBase + ":sign",
                     test::Reply::json(202, R"({"id":"op-1","status":"NotStarted"})"));
  svc.server.enqueue(kBase + "/sign/op-1",
                     test::Reply::json(200, R"({"id":"op-1","status":"Running"})"));
  svc.server.enqueue(kBase + "/sign/op-1", test::Reply::json(200, svc.ga_succeeded()));
  SignResult r = svc.sign();
  CHECK(r.signature == Bytes{1, 2, 3, 4});
  CHECK(r.chain.size() == 3);
  auto posts = svc.server.requests(kBase + ":sign");
  REQUIRE(posts.size() == 1);
  CHECK(posts[0].target == kBase + ":sign?api-version=2024-06-15");
  CHECK(posts[0].header("x-correlation-id") == "corr-42");
  auto polls = svc.server.requests(kBase + "/sign/op-1");
  REQUIRE(polls.size() == 2);
  for (const auto& p : polls) CHECK(p.target == kBase + "/sign/op-1?api-version=2024-06-15");
  CHECK(svc.server.requests(kBase + "/sign").empty());
}

TEST_CASE("a GA operation that fails reports the Azure Core error",
          "[signer][network][api-version]") {
  FakeService svc(ApiVersion::ga_2024_06_15);
  svc.server.enqueue(kBase + ":sign",
                     test::Reply::json(202, R"({"id":"op-1","status":"NotStarted"})"));
  svc.server.enqueue(
      kBase + "/sign/op-1",
      test::Reply::json(
          200,
          R"({"id":"op-1","status":"Failed","error":{"code":"SigningFailed","message":"the HSM said no"}})"));
  auto e = svc.sign_error<FileError>();
  CHECK_THAT(e.what(),
             Catch::Contains("Failed") && Catch::Contains("SigningFailed: the HSM said no"));
}

TEST_CASE("a refusal of the GA version: one fallback per run, however many files are in flight",
          "[signer][network][api-version]") {
  struct Refusal {
    const char* name;
    test::Reply reply;
  };
  test::Reply unsupported = test::Reply::json(
      400, R"({"error":{"code":"UnsupportedApiVersion","message":"not this version"}})");
  unsupported.headers.push_back({"x-ms-error-code", "UnsupportedApiVersion"});
  for (const auto& refusal :
       {Refusal{"400 UnsupportedApiVersion", unsupported},
        Refusal{"bare 401", test::Reply::text(401, "")},
        Refusal{"404", test::Reply::json(404, R"({"error":{"code":"NotFound","message":"m"}})")}}) {
    DYNAMIC_SECTION(refusal.name) {
      FakeService svc(std::nullopt);
      svc.server.on(kBase + ":sign", [&](const test::Request&) { return refusal.reply; });
      svc.server.on(kBase + "/sign", [](const test::Request&) {
        return test::Reply::json(202, FakeService::in_progress());
      });
      svc.server.on(kBase + "/sign/op-1",
                    [&](const test::Request&) { return test::Reply::json(200, svc.succeeded()); });
      auto [ok, errors] = svc.sign_concurrently(16);
      INFO((errors.empty() ? "" : errors.front()));
      CHECK(ok == 16);
      // The first request probed alone; the 15 others waited and went straight to the preview.
      CHECK(svc.server.requests(kBase + ":sign").size() == 1);
      CHECK(svc.server.requests(kBase + "/sign").size() == 16);
      for (const auto& p : svc.server.requests(kBase + "/sign/op-1"))
        CHECK(p.target == kBase + "/sign/op-1?api-version=2022-06-15-preview");
      // Remembered for the rest of the run.
      CHECK(svc.sign().chain.size() == 3);
      CHECK(svc.server.requests(kBase + ":sign").size() == 1);
    }
  }
}

TEST_CASE("both versions refused: the first refusal is the error, and no second fallback",
          "[signer][network][api-version]") {
  FakeService svc(std::nullopt);
  svc.server.on(kBase + ":sign", [](const test::Request&) { return test::Reply::text(401, ""); });
  svc.server.on(kBase + "/sign", [](const test::Request&) {
    return test::Reply::json(
        400, R"({"errorDetail":{"code":"UnsupportedApiVersion","message":"preview retired"}})");
  });
  auto e = svc.sign_error<AuthError>();
  std::string m = e.what();
  CHECK(e.code() == ExitCode::auth);
  CHECK_THAT(m, Catch::Contains("HTTP 401") &&
                    Catch::Contains("api-version 2022-06-15-preview was refused too") &&
                    Catch::Contains("preview retired"));
  CHECK(svc.server.requests(kBase + ":sign").size() == 1);
  CHECK(svc.server.requests(kBase + "/sign").size() == 1);
  svc.sign_error<AuthError>();
  CHECK(svc.server.requests(kBase + ":sign").size() == 2);
  CHECK(svc.server.requests(kBase + "/sign").size() == 1);  // fell back once per run
}

TEST_CASE("a first answer that is not about the version settles nothing",
          "[signer][network][api-version]") {
  FakeService svc(std::nullopt);
  svc.server.enqueue(kBase + ":sign",
                     test::Reply::json(400, R"({"error":{"code":"BadRequest","message":"m"}})"));
  svc.server.enqueue(kBase + ":sign",
                     test::Reply::json(202, R"({"id":"op-1","status":"NotStarted"})"));
  svc.server.enqueue(kBase + "/sign/op-1", test::Reply::json(200, svc.ga_succeeded()));
  CHECK_THAT(svc.sign_error<FileError>().what(), Catch::Contains("BadRequest"));
  CHECK(svc.sign().chain.size() == 3);
  CHECK(svc.server.requests(kBase + ":sign").size() == 2);
  CHECK(svc.server.requests(kBase + "/sign").empty());
}

TEST_CASE("a pinned api-version never falls back", "[signer][network][api-version]") {
  SECTION("the preview, refused by a GA-only service: input error naming the version") {
    FakeService svc(ApiVersion::preview_2022_06_15);
    test::Reply unsupported = test::Reply::json(
        400, R"({"error":{"code":"UnsupportedApiVersion","message":"use 2024-06-15"}})");
    svc.server.on(kBase + "/sign", [&](const test::Request&) { return unsupported; });
    auto e = svc.sign_error<InputError>();
    CHECK_THAT(e.what(), Catch::Contains("does not accept api-version 2022-06-15-preview") &&
                             Catch::Contains("pinned by the api-version option"));
    CHECK(svc.server.requests(kBase + "/sign").size() == 1);
    CHECK(svc.server.requests(kBase + ":sign").empty());
  }
  SECTION("the GA version, answered 401") {
    FakeService svc(ApiVersion::ga_2024_06_15);
    svc.server.on(kBase + ":sign", [](const test::Request&) { return test::Reply::text(401, ""); });
    auto e = svc.sign_error<AuthError>();
    CHECK_THAT(e.what(), Catch::Contains("api-version 2024-06-15 was pinned"));
    CHECK(svc.server.requests(kBase + ":sign").size() == 1);
    CHECK(svc.server.requests(kBase + "/sign").empty());
  }
}

namespace {
std::string chain_der(const FakeService& svc) {
  Bytes p7 = test::certs_only_pkcs7(
      {svc.chain.root.cert.get(), svc.chain.leaf.cert.get(), svc.chain.inter.cert.get()});
  return std::string(p7.begin(), p7.end());
}
}  // namespace

TEST_CASE("the signing certificate is read from the certificate-chain endpoint, not by signing",
          "[signer][network][certchain]") {
  SECTION("automatic: the GA version's certchain, DER PKCS#7, leaf first") {
    FakeService svc(std::nullopt);
    svc.server.on(kBase + "/sign/certchain", [&](const test::Request&) {
      return test::Reply::bytes(200, "application/pkcs7-mime", chain_der(svc));
    });
    auto chain = test::run_coro(svc.io, svc.signer->certificate_chain());
    REQUIRE(chain.size() == 3);
    CHECK(X509_cmp(chain[0].get(), svc.chain.leaf.cert.get()) == 0);
    auto gets = svc.server.requests(kBase + "/sign/certchain");
    REQUIRE(gets.size() == 1);
    CHECK(gets[0].method == "GET");
    CHECK(gets[0].target == kBase + "/sign/certchain?api-version=2024-06-15");
    CHECK(gets[0].header("accept") == "application/pkcs7-mime");
    CHECK(gets[0].header("authorization") == std::string("Bearer ") + kToken);
    CHECK(svc.server.requests(kBase + ":sign").empty());  // nothing paid for
    CHECK(svc.server.requests(kBase + "/sign").empty());
  }
  SECTION("a service refusing the GA version: the preview's certchain, remembered for signing") {
    FakeService svc(std::nullopt);
    test::Reply unsupported = test::Reply::json(
        400, R"({"error":{"code":"UnsupportedApiVersion","message":"not this version"}})");
    svc.server.on(kBase + "/sign/certchain", [&](const test::Request& r) {
      if (r.target.find("2024-06-15") != std::string::npos) return unsupported;
      return test::Reply::bytes(200, "application/pkcs7-mime", chain_der(svc));
    });
    svc.server.on(kBase + "/sign", [](const test::Request&) {
      return test::Reply::json(202, FakeService::in_progress());
    });
    svc.server.on(kBase + "/sign/op-1",
                  [&](const test::Request&) { return test::Reply::json(200, svc.succeeded()); });
    auto chain = test::run_coro(svc.io, svc.signer->certificate_chain());
    CHECK(chain.size() == 3);
    CHECK(svc.server.requests(kBase + "/sign/certchain").size() == 2);
    CHECK(svc.sign().chain.size() == 3);
    CHECK(svc.server.requests(kBase + ":sign").empty());  // the preview, straight away
  }
  SECTION("403: an identity error naming the role, as for signing") {
    FakeService svc(std::nullopt);
    svc.server.on(kBase + "/sign/certchain",
                  [](const test::Request&) { return test::Reply::text(403, ""); });
    try {
      test::run_coro(svc.io, svc.signer->certificate_chain());
      FAIL("no error");
    } catch (const AuthError& e) {
      CHECK_THAT(e.what(), Catch::Contains("Certificate Profile Signer") &&
                               Catch::Contains("certificate chain") && !Catch::Contains(kToken));
    }
  }
  SECTION("an answer cut short is asked again; never a chain is a FileError") {
    FakeService svc(ApiVersion::ga_2024_06_15);
    std::string der = chain_der(svc);
    svc.server.enqueue(kBase + "/sign/certchain",
                       test::Reply::bytes(200, "application/pkcs7-mime", der.substr(0, 40)));
    svc.server.enqueue(kBase + "/sign/certchain",
                       test::Reply::bytes(200, "application/pkcs7-mime", der));
    CHECK(test::run_coro(svc.io, svc.signer->certificate_chain()).size() == 3);
    svc.server.on(kBase + "/sign/certchain", [](const test::Request&) {
      return test::Reply::bytes(200, "application/pkcs7-mime", "not a chain");
    });
    CHECK_THROWS_AS(test::run_coro(svc.io, svc.signer->certificate_chain()), FileError);
  }
}
