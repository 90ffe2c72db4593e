// The credential chain against a scripted loopback HTTPS server standing in for the GitHub OIDC
// provider and Microsoft Entra ID: recorded requests, fresh GitHub tokens, refresh, refusals.
#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>

#include "auth/auth_internal.hpp"
#include "common/error.hpp"
#include "http/client.hpp"
#include "platform/platform.hpp"
#include "support/coro.hpp"
#include "support/fast_client.hpp"
#include "support/pki.hpp"
#include "support/recording.hpp"
#include "support/test_server.hpp"

using namespace tsign;
using namespace tsign::auth;
namespace asio = boost::asio;

namespace {

using test::parse_form;
using test::RecordingLog;

const Runner no_az = [](const std::vector<std::string>&, std::chrono::milliseconds) {
  RunOutcome r;
  r.not_found = true;
  return r;
};

// A fake GitHub OIDC provider + Entra ID on one loopback HTTPS server.
struct FakeCloud {
  test::TestServer server{{.tls = true}};
  asio::io_context io;
  http::ClientOptions opts = test::fast_client_options(server);
  http::Client client{io.get_executor(), opts};
  RecordingLog log;
  SysClock::time_point clock{std::chrono::seconds(1'700'000'000)};
  int github_tokens = 0;
  int expires_in = 3600;
  const std::string token_path = "/tenant-1/oauth2/v2.0/token";

  FakeCloud() {
    server.on("/oidc", [this](const test::Request&) {
      return test::Reply::json(200,
                               R"({"value":"gh-jwt-)" + std::to_string(++github_tokens) + R"("})");
    });
    server.on(token_path, [this](const test::Request& r) {
      auto form = parse_form(r.body);
      return test::Reply::json(200, R"({"token_type":"Bearer","expires_in":)" +
                                        std::to_string(expires_in) +
                                        R"(,"access_token":"entra-token-for-)" +
                                        form["client_assertion"] + form["client_secret"] + R"("})");
    });
  }

  std::map<std::string, std::string> env(bool github) {
    std::map<std::string, std::string> e{{"AZURE_TENANT_ID", "tenant-1"},
                                         {"AZURE_CLIENT_ID", "client-1"}};
    if (github) {
      e["ACTIONS_ID_TOKEN_REQUEST_URL"] = server.url("/oidc?api-version=2.0");
      e["ACTIONS_ID_TOKEN_REQUEST_TOKEN"] = "runner-request-token";
    }
    return e;
  }

  std::unique_ptr<auth::TokenSource> chain(std::map<std::string, std::string> e,
                                           CredentialSettings s = {}) {
    s.authority_host = server.url("");
    while (s.authority_host.back() == '/') s.authority_host.pop_back();
    s.exclude_managed_identity = true;  // never probe 169.254.169.254 from a test
    s.exclude_azure_cli = true;
    return make_credential_chain(
        s, client, log,
        [e](const std::string& n) -> std::optional<std::string> {
          auto it = e.find(n);
          if (it == e.end()) return std::nullopt;
          return it->second;
        },
        [this] { return clock; }, no_az);
  }

  AccessToken get(auth::TokenSource& t) { return test::run_coro(io, t.get_token()); }
};

}  // namespace

TEST_CASE("GitHub OIDC to Entra: the requests and a fresh GitHub token per Entra request",
          "[auth][network]") {
  FakeCloud cloud;
  auto chain = cloud.chain(cloud.env(true));
  AccessToken t = cloud.get(*chain);
  CHECK(t.token.reveal() == "entra-token-for-gh-jwt-1");
  CHECK(t.expires_on == cloud.clock + std::chrono::seconds(3600));
  CHECK(chain->name() == "workload identity (GitHub OIDC)");

  auto oidc = cloud.server.requests("/oidc");
  REQUIRE(oidc.size() == 1);
  CHECK(oidc[0].method == "GET");
  CHECK(oidc[0].target == "/oidc?api-version=2.0&audience=api%3A%2F%2FAzureADTokenExchange");
  CHECK(oidc[0].header("authorization") == "Bearer runner-request-token");

  auto entra = cloud.server.requests(cloud.token_path);
  REQUIRE(entra.size() == 1);
  CHECK(entra[0].method == "POST");
  CHECK(entra[0].header("content-type") == "application/x-www-form-urlencoded");
  auto form = parse_form(entra[0].body);
  CHECK(form ==
        std::map<std::string, std::string>{
            {"client_id", "client-1"},
            {"scope", "https://codesigning.azure.net/.default"},
            {"client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
            {"client_assertion", "gh-jwt-1"},
            {"grant_type", "client_credentials"}});
  CHECK(cloud.log.was_masked("gh-jwt-1"));
  CHECK(cloud.log.was_masked("entra-token-for-gh-jwt-1"));

  // Cached until 5 minutes before expiry; then a new Entra request with a NEW GitHub token.
  CHECK(cloud.get(*chain).token.reveal() == "entra-token-for-gh-jwt-1");
  CHECK(cloud.server.requests("/oidc").size() == 1);
  cloud.clock += std::chrono::minutes(56);
  CHECK(cloud.get(*chain).token.reveal() == "entra-token-for-gh-jwt-2");
  entra = cloud.server.requests(cloud.token_path);
  REQUIRE(entra.size() == 2);
  CHECK(parse_form(entra[1].body)["client_assertion"] == "gh-jwt-2");
}

TEST_CASE("a short-lived token is refreshed at half its lifetime", "[auth][network]") {
  FakeCloud cloud;
  cloud.expires_in = 120;
  auto chain = cloud.chain(cloud.env(true));
  CHECK(cloud.get(*chain).token.reveal() == "entra-token-for-gh-jwt-1");
  cloud.clock += std::chrono::seconds(59);
  CHECK(cloud.get(*chain).token.reveal() == "entra-token-for-gh-jwt-1");
  cloud.clock += std::chrono::seconds(2);
  CHECK(cloud.get(*chain).token.reveal() == "entra-token-for-gh-jwt-2");
  CHECK(cloud.server.requests(cloud.token_path).size() == 2);
}

namespace {
// Entra's answer to a client assertion outside its validity window.
test::Reply expired_assertion() {
  return test::Reply::json(
      400,
      R"({"error":"invalid_client","error_description":"AADSTS700024: Client assertion is not within its valid time range."})");
}
}  // namespace

TEST_CASE("AADSTS700024 fetches a fresh GitHub token and retries once", "[auth][network]") {
  FakeCloud cloud;
  cloud.server.enqueue(cloud.token_path, expired_assertion());
  auto chain = cloud.chain(cloud.env(true));
  CHECK(cloud.get(*chain).token.reveal() == "entra-token-for-gh-jwt-2");
  CHECK(cloud.server.requests("/oidc").size() == 2);

  // Twice in a row: reported, with what Entra said and without the assertion.
  FakeCloud cloud2;
  for (int i = 0; i < 2; ++i) cloud2.server.enqueue(cloud2.token_path, expired_assertion());
  auto chain2 = cloud2.chain(cloud2.env(true));
  try {
    cloud2.get(*chain2);
    FAIL("no throw");
  } catch (const AuthError& e) {
    std::string m = e.what();
    CHECK(m.find("AADSTS700024") != std::string::npos);
    CHECK(m.find("invalid_client") != std::string::npos);
    CHECK(m.find("gh-jwt") == std::string::npos);
    CHECK(m.find("runner-request-token") == std::string::npos);
  }
  CHECK(cloud2.server.requests("/oidc").size() == 2);
}

TEST_CASE("Entra refusals are AuthErrors naming the error, never the secret", "[auth][network]") {
  FakeCloud cloud;
  cloud.server.enqueue(
      cloud.token_path,
      test::Reply::json(
          401,
          R"({"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided."})"));
  auto e = cloud.env(false);
  e["AZURE_CLIENT_SECRET"] = "super-secret-value";
  auto chain = cloud.chain(e);
  try {
    cloud.get(*chain);
    FAIL("no throw");
  } catch (const AuthError& err) {
    std::string m = err.what();
    CHECK(err.code() == ExitCode::auth);
    CHECK(m.find("AADSTS7000215") != std::string::npos);
    CHECK(m.find("client-1") != std::string::npos);
    CHECK(m.find("super-secret-value") == std::string::npos);
  }
  CHECK(cloud.log.was_masked("super-secret-value"));
  // The secret went in the form, and the next attempt works.
  AccessToken t = cloud.get(*chain);
  CHECK(t.token.reveal() == "entra-token-for-super-secret-value");
  auto form = parse_form(cloud.server.requests(cloud.token_path).back().body);
  CHECK(form["client_secret"] == "super-secret-value");
  CHECK(form["grant_type"] == "client_credentials");
  CHECK(form.count("client_assertion") == 0);
}

TEST_CASE("the environment credential wins over workload identity", "[auth][network]") {
  FakeCloud cloud;
  auto e = cloud.env(true);
  e["AZURE_CLIENT_SECRET"] = "s";
  auto chain = cloud.chain(e);
  CHECK(cloud.get(*chain).token.reveal() == "entra-token-for-s");
  CHECK(chain->name() == "client secret");
  CHECK(cloud.server.requests("/oidc").empty());

  // ... unless excluded.
  CredentialSettings s;
  s.exclude_environment = true;
  auto chain2 = cloud.chain(e, s);
  CHECK(cloud.get(*chain2).token.reveal() == "entra-token-for-gh-jwt-1");
}

TEST_CASE("the GitHub OIDC request is retried like actions/toolkit does", "[auth][network]") {
  FakeCloud cloud;
  cloud.server.enqueue("/oidc", test::Reply::json(503, "{}"));
  cloud.server.enqueue("/oidc", test::Reply::failure(test::Fault::drop));
  auto chain = cloud.chain(cloud.env(true));
  CHECK(cloud.get(*chain).token.reveal() == "entra-token-for-gh-jwt-1");
  CHECK(cloud.server.requests("/oidc").size() >= 2);

  // A refusal (no id-token permission) is an AuthError that says what to do.
  FakeCloud cloud2;
  cloud2.server.enqueue("/oidc", test::Reply::json(403, R"({"message":"no permission"})"));
  auto chain2 = cloud2.chain(cloud2.env(true));
  CHECK_THROWS_WITH(cloud2.get(*chain2), Catch::Contains("id-token: write"));
}

TEST_CASE("a token answer cut short is asked for again, within the retry budget",
          "[auth][network]") {
  FakeCloud cloud;
  cloud.server.enqueue("/oidc", test::Reply::json(200, R"({"value":"gh-j)"));
  cloud.server.enqueue(cloud.token_path,
                       test::Reply::json(200, R"({"token_type":"Bearer","expires_in":36)"));
  auto chain = cloud.chain(cloud.env(true));
  CHECK(cloud.get(*chain).token.reveal() == "entra-token-for-gh-jwt-1");
  CHECK(cloud.server.requests("/oidc").size() == 2);
  CHECK(cloud.server.requests(cloud.token_path).size() == 2);

  // Always cut short: an AuthError after the budget (six attempts), never quoting the body.
  FakeCloud cloud2;
  cloud2.server.on(cloud2.token_path, [](const test::Request&) {
    return test::Reply::json(200, R"({"access_token":"half-a-tok)");
  });
  auto chain2 = cloud2.chain(cloud2.env(true));
  try {
    cloud2.get(*chain2);
    FAIL("no throw");
  } catch (const AuthError& e) {
    CHECK_THAT(e.what(), Catch::Contains("not a JSON token response"));
    CHECK_THAT(e.what(), !Catch::Contains("half-a-tok"));
  }
  CHECK(cloud2.server.requests(cloud2.token_path).size() ==
        static_cast<std::size_t>(cloud2.opts.retry.max_attempts));
}

TEST_CASE("invalidate: a token the service refused is not handed out again", "[auth][network]") {
  FakeCloud cloud;
  auto chain = cloud.chain(cloud.env(true));
  AccessToken first = cloud.get(*chain);
  CHECK(first.token.reveal() == "entra-token-for-gh-jwt-1");
  chain->invalidate(first.token);
  AccessToken second = cloud.get(*chain);
  CHECK(second.token.reveal() == "entra-token-for-gh-jwt-2");
  // Many requests refused with the old token at once: one refresh, not one each.
  chain->invalidate(first.token);
  CHECK(cloud.get(*chain).token.reveal() == "entra-token-for-gh-jwt-2");
  CHECK(cloud.server.requests(cloud.token_path).size() == 2);
}

TEST_CASE("expired: expires_on, or an earlier exp claim of a JWT access token", "[auth]") {
  using namespace std::chrono;
  const SysClock::time_point now{seconds(1'700'000'000)};
  auto jwt = [](long long exp) {
    std::string payload =
        R"({"aud":"https://codesigning.azure.net","exp":)" + std::to_string(exp) + "}";
    return base64url_encode(as_bytes(R"({"alg":"RS256"})")) + "." +
           base64url_encode(as_bytes(payload)) + ".c2ln";
  };
  CHECK_FALSE(expired({Secret("opaque"), now + seconds(1)}, now));
  CHECK(expired({Secret("opaque"), now}, now));
  CHECK(expired({Secret(jwt(1'699'999'999)), now + hours(1)}, now));
  CHECK_FALSE(expired({Secret(jwt(1'700'000'060)), now + hours(1)}, now));
  CHECK_FALSE(expired({Secret("a.b!.c"), now + hours(1)}, now));  // not base64url: opaque
}

namespace {

// A file in the temporary directory, deleted at the end of the test.
struct TempFile {
  std::filesystem::path path =
      std::filesystem::temp_directory_path() / ("tsign-auth-" + to_hex(random_bytes(8)));
  void write(const std::string& text) const { std::ofstream(path, std::ios::binary) << text; }
  ~TempFile() {
    std::error_code ec;
    std::filesystem::remove(path, ec);
  }
};

}  // namespace

TEST_CASE("AZURE_FEDERATED_TOKEN_FILE is re-read for every token request", "[auth][network]") {
  FakeCloud cloud;
  TempFile file;
  file.write("file-jwt-1\n");
  auto e = cloud.env(true);  // the file wins over GitHub OIDC
  e["AZURE_FEDERATED_TOKEN_FILE"] = file.path.string();
  auto chain = cloud.chain(e);
  CHECK(cloud.get(*chain).token.reveal() == "entra-token-for-file-jwt-1");
  CHECK(cloud.log.was_masked("file-jwt-1"));
  file.write("file-jwt-2");
  cloud.clock += std::chrono::minutes(56);
  CHECK(cloud.get(*chain).token.reveal() == "entra-token-for-file-jwt-2");
  CHECK(cloud.server.requests("/oidc").empty());

  // A vanished file: while the current token has minutes left it is used (with a warning),
  // then the refresh failure is an AuthError naming the variable.
  std::filesystem::remove(file.path);
  cloud.clock += std::chrono::minutes(56);
  CHECK(cloud.get(*chain).token.reveal() == "entra-token-for-file-jwt-2");
  CHECK(std::any_of(cloud.log.lines.begin(), cloud.log.lines.end(), [](const std::string& l) {
    return l.find("could not refresh") != std::string::npos;
  }));
  cloud.clock += std::chrono::minutes(3) + std::chrono::seconds(30);
  CHECK_THROWS_WITH(cloud.get(*chain), Catch::Contains("AZURE_FEDERATED_TOKEN_FILE"));
}

TEST_CASE("a client certificate sends a signed assertion for the token URL", "[auth][network]") {
  FakeCloud cloud;
  auto client_cert = test::make_cert("client", nullptr, false, /*rsa=*/true);
  TempFile pem;
  pem.write(test::to_pem(client_cert.cert.get()) + test::key_pem(client_cert.key.get()));
  auto e = cloud.env(false);
  e["AZURE_CLIENT_CERTIFICATE_PATH"] = pem.path.string();
  auto chain = cloud.chain(e);
  AccessToken t = cloud.get(*chain);
  CHECK(chain->name() == "client certificate");
  auto form = parse_form(cloud.server.requests(cloud.token_path).at(0).body);
  CHECK(form["client_assertion_type"] == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer");
  const std::string& jwt = form["client_assertion"];
  CHECK(std::count(jwt.begin(), jwt.end(), '.') == 2);
  auto dot = jwt.find('.');
  auto claims = base64url_decode(jwt.substr(dot + 1, jwt.find('.', dot + 1) - dot - 1));
  REQUIRE(claims);
  CHECK(to_string(*claims).find("\"aud\":\"" + cloud.server.url(cloud.token_path) + "\"") !=
        std::string::npos);
  CHECK(t.token.reveal() == "entra-token-for-" + jwt);
}

TEST_CASE("managed identity: IMDS is probed, then asked with Metadata: true", "[auth][network]") {
  test::TestServer imds;  // plain HTTP, as IMDS is
  imds.on("/metadata/identity/oauth2/token", [](const test::Request& r) {
    if (!r.header("metadata"))
      return test::Reply::json(
          400,
          R"({"error":"invalid_request","error_description":"Required metadata header not specified"})");
    return test::Reply::json(
        200, R"({"access_token":"imds-token","expires_in":"3599","token_type":"Bearer"})");
  });
  asio::io_context io;
  http::Client client(io.get_executor(), {});
  auto base = imds.url("");
  base.pop_back();
  auto now = SysClock::time_point(std::chrono::seconds(1'700'000'000));
  auto src = make_imds_source(base, "uami-client", client, [now] { return now; });
  AccessToken t = test::run_coro(io, src->get_token());
  CHECK(t.token.reveal() == "imds-token");
  CHECK(t.expires_on == now + std::chrono::seconds(3599));
  auto reqs = imds.requests();
  REQUIRE(reqs.size() == 2);
  CHECK_FALSE(reqs[0].header("metadata"));
  CHECK(reqs[1].header("metadata") == "true");
  CHECK(reqs[1].target ==
        "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https://"
        "codesigning.azure.net&client_id=uami-client");

  // Nothing listening: Unavailable (the chain moves on), quickly and without retries.
  std::string gone;
  {
    test::TestServer s;
    gone = s.url("");
    gone.pop_back();
  }
  auto absent = make_imds_source(gone, "", client, [now] { return now; });
  CHECK_THROWS_AS(test::run_coro(io, absent->get_token()), Unavailable);

  // An identity-less machine (IMDS answers 400 to the real request too): Unavailable.
  test::TestServer no_identity;
  no_identity.on("/metadata/identity/oauth2/token", [](const test::Request&) {
    return test::Reply::json(
        400, R"({"error":"invalid_request","error_description":"Identity not found"})");
  });
  auto none_base = no_identity.url("");
  none_base.pop_back();
  auto none = make_imds_source(none_base, "", client, [now] { return now; });
  CHECK_THROWS_WITH(test::run_coro(io, none->get_token()), Catch::Contains("Identity not found"));
}

TEST_CASE("managed identity: the App Service endpoint", "[auth][network]") {
  test::TestServer msi;
  msi.on("/msi/token", [](const test::Request& r) {
    if (r.header("x-identity-header") != "id-header-secret") return test::Reply::json(401, "{}");
    return test::Reply::json(
        200, R"({"access_token":"app-token","expires_on":"1700003600","token_type":"Bearer"})");
  });
  asio::io_context io;
  http::Client client(io.get_executor(), {});
  auto src = make_app_service_identity_source(msi.url("/msi/token"), Secret("id-header-secret"), "",
                                              client, [] { return SysClock::now(); });
  AccessToken t = test::run_coro(io, src->get_token());
  CHECK(t.token.reveal() == "app-token");
  CHECK(t.expires_on == SysClock::time_point(std::chrono::seconds(1'700'003'600)));
  CHECK(msi.requests().at(0).target ==
        "/msi/token?api-version=2019-08-01&resource=https://codesigning.azure.net");
}

#ifndef _WIN32
TEST_CASE("platform::run_capture runs a program and captures its output", "[auth][platform]") {
  auto r = platform::run_capture({"sh", "-c", "echo out; echo err >&2; exit 3"},
                                 std::chrono::seconds(30));
  CHECK(r.exit_code == 3);
  CHECK(r.out == "out\n");
  CHECK(r.err == "err\n");
  CHECK_FALSE(r.timed_out);
  CHECK_FALSE(r.not_found);

  auto missing = platform::run_capture({"tsign-no-such-program-xyz"}, std::chrono::seconds(30));
  CHECK(missing.not_found);

  // The child is killed at the timeout (it would otherwise run for a minute).
  auto start = std::chrono::steady_clock::now();
  auto slow = platform::run_capture({"sh", "-c", "echo started; exec sleep 60"},
                                    std::chrono::milliseconds(300));
  CHECK(slow.timed_out);
  CHECK(slow.out == "started\n");
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(30));
}
#endif

TEST_CASE("a federated credential that does not match: the message shows the token's claims",
          "[auth][network]") {
  FakeCloud cloud;
  // A GitHub token as GitHub shapes it: header.payload.signature, the payload's claims in clear.
  const std::string payload =
      R"({"iss":"https://token.actions.githubusercontent.com","aud":"api://AzureADTokenExchange",)"
      R"("sub":"repo:Octo-Org/App:environment:Signing","exp":1700000300})";
  const std::string jwt = "eyJhbGciOiJSUzI1NiJ9." + base64url_encode(as_bytes(payload)) + ".c2ln";
  cloud.server.on("/oidc", [&](const test::Request&) {
    return test::Reply::json(200, R"({"value":")" + jwt + R"("})");
  });
  cloud.server.on(cloud.token_path, [](const test::Request&) {
    return test::Reply::json(
        400, R"({"error":"invalid_request","error_description":"AADSTS700213: No matching )"
             R"(federated identity record found for presented assertion subject."})");
  });
  auto chain = cloud.chain(cloud.env(true));
  try {
    cloud.get(*chain);
    FAIL("no throw");
  } catch (const AuthError& e) {
    std::string m = e.what();
    CHECK_THAT(m, Catch::Contains("AADSTS700213") &&
                      Catch::Contains("subject 'repo:Octo-Org/App:environment:Signing'") &&
                      Catch::Contains("issuer 'https://token.actions.githubusercontent.com'") &&
                      Catch::Contains("audience 'api://AzureADTokenExchange'") &&
                      Catch::Contains("case-sensitive"));
    CHECK(m.find(jwt) == std::string::npos);
    CHECK(m.find("c2ln") == std::string::npos);
  }
}
