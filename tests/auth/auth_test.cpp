// Pure parts of the credential chain: form encoding, token answers, the client assertion, the
// GitHub OIDC URL, the Azure CLI answer, link selection, and the token cache (fake clock).
#include <catch2/catch.hpp>

#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json.hpp>
#include <filesystem>
#include <fstream>
#include <map>

#include <openssl/pkcs12.h>

#include "auth/auth_internal.hpp"
#include "common/digest.hpp"
#include "common/error.hpp"
#include "http/client.hpp"
#include "support/coro.hpp"
#include "support/pki.hpp"
#include "support/recording.hpp"

using namespace tsign;
using namespace tsign::auth;
namespace asio = boost::asio;
namespace json = boost::json;

namespace {

EnvLookup env_of(std::map<std::string, std::string> m) {
  return [m](const std::string& n) -> std::optional<std::string> {
    auto it = m.find(n);
    if (it == m.end()) return std::nullopt;
    return it->second;
  };
}

json::object decode_part(const std::string& part) {
  auto b = base64url_decode(part);
  REQUIRE(b);
  return json::parse(to_string(*b)).as_object();
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::size_t start = 0;
  for (;;) {
    auto p = s.find(sep, start);
    out.push_back(s.substr(start, p - start));
    if (p == std::string::npos) break;
    start = p + 1;
  }
  return out;
}

using test::RecordingLog;

// A PKCS#12 file as current tools export it (OpenSSL 3 defaults: AES-256, PBKDF2, SHA-256 MAC).
std::string pfx_of(EVP_PKEY* key, X509* cert, const std::vector<X509*>& cas,
                   const std::string& password) {
  STACK_OF(X509)* ca = sk_X509_new_null();
  for (X509* c : cas) sk_X509_push(ca, c);
  PKCS12* p12 = PKCS12_create(password.c_str(), "client", key, cert, ca, 0, 0, 0, 0, 0);
  sk_X509_free(ca);
  REQUIRE(p12);
  unsigned char* der = nullptr;
  int n = i2d_PKCS12(p12, &der);
  PKCS12_free(p12);
  REQUIRE(n > 0);
  std::string out(reinterpret_cast<char*>(der), static_cast<std::size_t>(n));
  OPENSSL_free(der);
  return out;
}

}  // namespace

TEST_CASE("form_encode percent-encodes everything outside unreserved", "[auth]") {
  std::string body = form_encode({{"client_id", "abc-1.2_3~"},
                                  {"scope", "https://codesigning.azure.net/.default"},
                                  {"client_secret", "a b&c=d+e%"}});
  CHECK(body ==
        "client_id=abc-1.2_3~&scope=https%3A%2F%2Fcodesigning.azure.net%2F.default&"
        "client_secret=a%20b%26c%3Dd%2Be%25");
}

TEST_CASE("parse_token_response accepts Entra and managed identity shapes", "[auth]") {
  auto now = SysClock::time_point(std::chrono::seconds(1'700'000'000));
  auto t = parse_token_response(R"({"token_type":"Bearer","expires_in":3599,"access_token":"tok"})",
                                now, "Entra");
  CHECK(t.token.reveal() == "tok");
  CHECK(t.expires_on == now + std::chrono::seconds(3599));

  t = parse_token_response(R"({"access_token":"t2","expires_in":"60"})", now, "IMDS");
  CHECK(t.expires_on == now + std::chrono::seconds(60));

  t = parse_token_response(R"({"access_token":"t3","expires_on":"1700003600"})", now, "MI");
  CHECK(t.expires_on == SysClock::time_point(std::chrono::seconds(1'700'003'600)));

  CHECK_THROWS_AS(parse_token_response(R"({"expires_in":60})", now, "x"), AuthError);
  CHECK_THROWS_AS(parse_token_response(R"({"access_token":"t"})", now, "x"), AuthError);
  CHECK_THROWS_AS(
      parse_token_response(R"({"access_token":"t","expires_in":1,"token_type":"pop"})", now, "x"),
      AuthError);
  // A malformed answer is reported without quoting it: it could hold a token.
  try {
    parse_token_response("access_token=leaky-token-value", now, "Entra");
    FAIL("no throw");
  } catch (const AuthError& e) {
    CHECK(std::string(e.what()).find("leaky-token-value") == std::string::npos);
    CHECK(e.code() == ExitCode::auth);
  }
}

TEST_CASE("the client assertion is an RS256 JWT that verifies with the certificate", "[auth]") {
  auto ca = test::make_cert("ca", nullptr, true);
  auto client = test::make_cert("client app", &ca, false, /*rsa=*/true);
  // The file may hold other certificates; the one matching the key is used.
  std::string pem = test::to_pem(ca.cert.get()) + test::key_pem(client.key.get()) +
                    test::to_pem(client.cert.get());
  ClientCertificate cc = parse_client_certificate(pem, "client.pem");
  CHECK(X509_cmp(cc.cert.get(), client.cert.get()) == 0);

  const std::string url = "https://login.microsoftonline.com/tenant/oauth2/v2.0/token";
  auto now = SysClock::time_point(std::chrono::seconds(1'700'000'000));
  Secret a = build_client_assertion(cc, "client-id-1", url, now);
  auto parts = split(a.reveal(), '.');
  REQUIRE(parts.size() == 3);

  auto header = decode_part(parts[0]);
  CHECK(header.at("alg").as_string() == "RS256");
  CHECK(header.at("typ").as_string() == "JWT");
  CHECK(header.at("x5t#S256").as_string() ==
        base64url_encode(hash(DigestAlg::sha256, test::to_der(client.cert.get()))));

  auto claims = decode_part(parts[1]);
  CHECK(claims.at("aud").as_string() == url);
  CHECK(claims.at("iss").as_string() == "client-id-1");
  CHECK(claims.at("sub").as_string() == "client-id-1");
  CHECK(claims.at("nbf").as_int64() == 1'700'000'000);
  CHECK(claims.at("exp").as_int64() == 1'700'000'600);
  CHECK(claims.at("jti").as_string().size() == 32);

  auto verify = [&](const std::string& input, const Bytes& sig) {
    OsslPtr<EVP_MD_CTX, EVP_MD_CTX_free> ctx(EVP_MD_CTX_new());
    REQUIRE(EVP_DigestVerifyInit(ctx.get(), nullptr, EVP_sha256(), nullptr,
                                 X509_get0_pubkey(client.cert.get())) == 1);
    return EVP_DigestVerify(ctx.get(), sig.data(), sig.size(),
                            reinterpret_cast<const unsigned char*>(input.data()),
                            input.size()) == 1;
  };
  auto sig = base64url_decode(parts[2]);
  REQUIRE(sig);
  CHECK(verify(parts[0] + "." + parts[1], *sig));
  CHECK_FALSE(verify(parts[0] + "." + parts[1] + "x", *sig));

  // Every assertion is new.
  Secret b = build_client_assertion(cc, "client-id-1", url, now);
  CHECK(decode_part(split(b.reveal(), '.')[1]).at("jti") != claims.at("jti"));
}

TEST_CASE("client certificate files are checked", "[auth]") {
  auto ec = test::make_cert("ec client", nullptr, false, /*rsa=*/false);
  CHECK_THROWS_AS(
      parse_client_certificate(test::key_pem(ec.key.get()) + test::to_pem(ec.cert.get()), "e.pem"),
      InputError);
  auto a = test::make_cert("a", nullptr, false, true);
  auto b = test::make_cert("b", nullptr, false, true);
  CHECK_THROWS_WITH(
      parse_client_certificate(test::key_pem(a.key.get()) + test::to_pem(b.cert.get()), "m.pem"),
      Catch::Contains("m.pem") && Catch::Contains("matches"));
  CHECK_THROWS_AS(load_client_certificate("/nonexistent/dir/client.pem"), InputError);
}

TEST_CASE("a PKCS#12 client certificate is read by its content, with its password", "[auth]") {
  auto ca = test::make_cert("client ca", nullptr, true, /*rsa=*/true);
  auto client = test::make_cert("client app", &ca, false, /*rsa=*/true);
  const std::string pfx = pfx_of(client.key.get(), client.cert.get(), {ca.cert.get()}, "pw-0451");

  // Named .pem, but PKCS#12 inside: the content decides.
  ClientCertificate cc = parse_client_certificate(pfx, "client.pem", Secret("pw-0451"));
  CHECK(X509_cmp(cc.cert.get(), client.cert.get()) == 0);
  CHECK(EVP_PKEY_eq(cc.key.get(), client.key.get()) == 1);
  REQUIRE(cc.chain.size() == 2);
  CHECK(X509_cmp(cc.chain[0].get(), client.cert.get()) == 0);
  CHECK(X509_cmp(cc.chain[1].get(), ca.cert.get()) == 0);
  // And PEM named .pfx is still PEM.
  ClientCertificate pem = parse_client_certificate(
      test::key_pem(client.key.get()) + test::to_pem(client.cert.get()), "client.pfx");
  CHECK(X509_cmp(pem.cert.get(), client.cert.get()) == 0);

  // A wrong or missing password: an input error naming the file, never the password.
  CHECK_THROWS_AS(parse_client_certificate(pfx, "c.pfx", Secret("guess-9137")), InputError);
  try {
    parse_client_certificate(pfx, "/ci/client-cert.pfx", Secret("guess-9137"));
  } catch (const InputError& e) {
    const std::string m = e.what();
    CHECK(m.find("/ci/client-cert.pfx") != std::string::npos);
    CHECK(m.find("wrong password") != std::string::npos);
    CHECK(m.find("AZURE_CLIENT_CERTIFICATE_PASSWORD") != std::string::npos);
    CHECK(m.find("guess-9137") == std::string::npos);
  }
  CHECK_THROWS_WITH(parse_client_certificate(pfx, "c.pfx"),
                    Catch::Contains("c.pfx") && Catch::Contains("needs a password"));
  // A password-less export opens without one.
  const std::string open = pfx_of(client.key.get(), client.cert.get(), {}, "");
  CHECK(X509_cmp(parse_client_certificate(open, "o.pfx").cert.get(), client.cert.get()) == 0);
  // An EC key is refused as in PEM.
  auto ec = test::make_cert("ec client", nullptr, false, /*rsa=*/false);
  CHECK_THROWS_WITH(
      parse_client_certificate(pfx_of(ec.key.get(), ec.cert.get(), {}, "p"), "e.pfx", Secret("p")),
      Catch::Contains("e.pfx") && Catch::Contains("RSA"));
}

TEST_CASE("x5c carries the certificate chain, leaf first, in standard base64 DER", "[auth]") {
  auto root = test::make_cert("client root", nullptr, true, /*rsa=*/true);
  auto inter = test::make_cert("client intermediate", &root, true, /*rsa=*/true);
  auto leaf = test::make_cert("client app", &inter, false, /*rsa=*/true);
  auto b64 = [](X509* c) { return base64_encode(test::to_der(c)); };
  const std::string url = "https://login.microsoftonline.com/tenant/oauth2/v2.0/token";
  auto now = SysClock::time_point(std::chrono::seconds(1'700'000'000));

  // Files list chains in any order; x5c is leaf, issuer, issuer's issuer.
  std::vector<ClientCertificate> loaded;
  loaded.push_back(
      parse_client_certificate(test::to_pem(root.cert.get()) + test::key_pem(leaf.key.get()) +
                                   test::to_pem(leaf.cert.get()) + test::to_pem(inter.cert.get()),
                               "chain.pem"));
  loaded.push_back(parse_client_certificate(
      pfx_of(leaf.key.get(), leaf.cert.get(), {root.cert.get(), inter.cert.get()}, "pw"),
      "chain.pfx", Secret("pw")));
  for (const auto& cc : loaded) {
    auto header =
        decode_part(split(build_client_assertion(cc, "id", url, now, true).reveal(), '.')[0]);
    REQUIRE(header.contains("x5c"));
    const auto& x5c = header.at("x5c").as_array();
    REQUIRE(x5c.size() == 3);
    CHECK(x5c[0].as_string() == b64(leaf.cert.get()));
    CHECK(x5c[1].as_string() == b64(inter.cert.get()));
    CHECK(x5c[2].as_string() == b64(root.cert.get()));
    // The thumbprint stays: Entra reads it when the certificate itself is registered.
    CHECK(header.at("x5t#S256").as_string() ==
          base64url_encode(hash(DigestAlg::sha256, test::to_der(leaf.cert.get()))));
    auto plain = decode_part(split(build_client_assertion(cc, "id", url, now).reveal(), '.')[0]);
    CHECK_FALSE(plain.contains("x5c"));
  }
}

TEST_CASE("the certificate password and send-chain switch are read as the Azure SDKs read them",
          "[auth]") {
  CredentialSettings s;
  auto r = resolve_settings(s, env_of({{"AZURE_CLIENT_CERTIFICATE_PASSWORD", "from-env"},
                                       {"AZURE_CLIENT_SEND_CERTIFICATE_CHAIN", "True"}}));
  CHECK(r.client_certificate_password.reveal() == "from-env");
  CHECK(r.send_certificate_chain);
  CHECK(resolve_settings(s, env_of({{"AZURE_CLIENT_SEND_CERTIFICATE_CHAIN", "1"}}))
            .send_certificate_chain);
  CHECK_FALSE(resolve_settings(s, env_of({{"AZURE_CLIENT_SEND_CERTIFICATE_CHAIN", "no"}}))
                  .send_certificate_chain);
  CHECK_FALSE(resolve_settings(s, env_of({})).send_certificate_chain);
  // The inputs win over the variables.
  s.client_certificate_password = Secret("from-input");
  s.send_certificate_chain = true;
  r = resolve_settings(s, env_of({{"AZURE_CLIENT_CERTIFICATE_PASSWORD", "from-env"}}));
  CHECK(r.client_certificate_password.reveal() == "from-input");
  CHECK(r.send_certificate_chain);
}

TEST_CASE("authority and tenant make the token URL", "[auth]") {
  auto none = env_of({});
  CHECK(resolve_authority("https://login.microsoftonline.com", none) ==
        "https://login.microsoftonline.com");
  CHECK(
      resolve_authority("https://login.microsoftonline.com",
                        env_of({{"AZURE_AUTHORITY_HOST", "https://login.microsoftonline.us/"}})) ==
      "https://login.microsoftonline.us");
  CHECK(resolve_authority("https://login.example/", env_of({{"AZURE_AUTHORITY_HOST", "x"}})) ==
        "https://login.example");
  CHECK_THROWS_AS(resolve_authority("http://login.microsoftonline.com", none), InputError);
  CHECK_THROWS_AS(resolve_authority("https://u@login.microsoftonline.com", none), InputError);

  CHECK(entra_token_url("https://a", "contoso.onmicrosoft.com") ==
        "https://a/contoso.onmicrosoft.com/oauth2/v2.0/token");
  CHECK(entra_token_url("https://a", "72f988bf-86f1-41af-91ab-2d7cd011db47") ==
        "https://a/72f988bf-86f1-41af-91ab-2d7cd011db47/oauth2/v2.0/token");
  CHECK_THROWS_AS(entra_token_url("https://a", "../evil"), InputError);
  CHECK_THROWS_AS(entra_token_url("https://a", "t/x"), InputError);
  CHECK_THROWS_AS(entra_token_url("https://a", "t?x"), InputError);
  CHECK_THROWS_AS(entra_token_url("https://a", ""), InputError);
}

TEST_CASE("GitHub OIDC URL and audience per cloud", "[auth]") {
  CHECK(github_oidc_audience("https://login.microsoftonline.com") == "api://AzureADTokenExchange");
  CHECK(github_oidc_audience("https://login.microsoftonline.us") ==
        "api://AzureADTokenExchangeUSGov");
  CHECK(github_oidc_audience("https://login.chinacloudapi.cn") ==
        "api://AzureADTokenExchangeChina");
  std::string url =
      github_oidc_url("https://pipelines.actions.githubusercontent.com/abc/idtoken?api-version=2.0",
                      "api://AzureADTokenExchange");
  CHECK(url ==
        "https://pipelines.actions.githubusercontent.com/abc/idtoken?api-version=2.0&audience="
        "api%3A%2F%2FAzureADTokenExchange");
  CHECK_THROWS_AS(github_oidc_url("not a url", "a"), AuthError);
}

TEST_CASE("Azure CLI output", "[auth]") {
  auto now = SysClock::time_point(std::chrono::seconds(1'700'000'000));
  auto t = parse_azure_cli_output(
      R"({"accessToken":"cli-tok","expiresOn":"2023-11-14 22:13:20.000000","expires_on":1700003600,"tokenType":"Bearer"})",
      now);
  CHECK(t.token.reveal() == "cli-tok");
  CHECK(t.expires_on == SysClock::time_point(std::chrono::seconds(1'700'003'600)));
  t = parse_azure_cli_output(R"({"accessToken":"x","expires_on":"1700003600"})", now);
  CHECK(t.expires_on == SysClock::time_point(std::chrono::seconds(1'700'003'600)));
  // Older CLIs: local time only.
  t = parse_azure_cli_output(R"({"accessToken":"x","expiresOn":"2030-01-02 03:04:05.000000"})",
                             now);
  std::tm tm{};
  tm.tm_year = 130;
  tm.tm_mon = 0;
  tm.tm_mday = 2;
  tm.tm_hour = 3;
  tm.tm_min = 4;
  tm.tm_sec = 5;
  tm.tm_isdst = -1;
  CHECK(t.expires_on == SysClock::from_time_t(std::mktime(&tm)));
  CHECK_THROWS_AS(parse_azure_cli_output(R"({"expires_on":1})", now), Unavailable);
  CHECK_THROWS_AS(parse_azure_cli_output("ERROR: Please run 'az login'", now), Unavailable);
}

namespace {

// A source whose tokens and timing the test controls.
struct FakeSource : auth::TokenSource {
  int calls = 0;
  SysClock::duration lifetime = std::chrono::hours(1);
  std::function<SysClock::time_point()> now;
  asio::steady_timer* gate = nullptr;  // if set, get_token waits until it is cancelled
  asio::awaitable<AccessToken> get_token() override {
    ++calls;
    if (gate) {
      boost::system::error_code ec;
      co_await gate->async_wait(asio::redirect_error(asio::use_awaitable, ec));
    }
    co_return AccessToken{Secret("token-" + std::to_string(calls)), now() + lifetime};
  }
  std::string name() const override { return "fake"; }
};

}  // namespace

TEST_CASE("the cache refreshes 5 minutes before expiry, or at half a short lifetime", "[auth]") {
  asio::io_context io;
  RecordingLog log;
  SysClock::time_point clock(std::chrono::seconds(1'700'000'000));
  auto now = [&] { return clock; };
  auto inner = std::make_unique<FakeSource>();
  FakeSource* fake = inner.get();
  fake->now = now;
  auto cache = make_token_cache(std::move(inner), log, now);

  CHECK(test::run_coro(io, cache->get_token()).token.reveal() == "token-1");
  CHECK(test::run_coro(io, cache->get_token()).token.reveal() == "token-1");
  clock += std::chrono::minutes(54);
  CHECK(test::run_coro(io, cache->get_token()).token.reveal() == "token-1");
  clock += std::chrono::minutes(1) + std::chrono::seconds(1);
  CHECK(test::run_coro(io, cache->get_token()).token.reveal() == "token-2");
  CHECK(fake->calls == 2);
  CHECK(log.masked == std::vector<std::string>{"token-1", "token-2"});
  bool named = false;
  for (auto& l : log.lines) named = named || l.find("fake") != std::string::npos;
  CHECK(named);

  // A 60 s token is refreshed after 30 s, not 5 minutes before it expires (which is never).
  fake->lifetime = std::chrono::seconds(60);
  clock += std::chrono::hours(2);
  CHECK(test::run_coro(io, cache->get_token()).token.reveal() == "token-3");
  clock += std::chrono::seconds(29);
  CHECK(test::run_coro(io, cache->get_token()).token.reveal() == "token-3");
  clock += std::chrono::seconds(2);
  CHECK(test::run_coro(io, cache->get_token()).token.reveal() == "token-4");
}

TEST_CASE("the cache refreshes once however many ask at the same time", "[auth]") {
  asio::io_context io;
  NullLog log;
  auto inner = std::make_unique<FakeSource>();
  FakeSource* fake = inner.get();
  fake->now = [] { return SysClock::now(); };
  asio::steady_timer gate(io, asio::steady_timer::time_point::max());
  fake->gate = &gate;
  auto cache = make_token_cache(std::move(inner), log, [] { return SysClock::now(); });

  std::vector<std::string> got;
  for (int i = 0; i < 10; ++i)
    asio::co_spawn(io, cache->get_token(), [&](std::exception_ptr e, AccessToken t) {
      REQUIRE(!e);
      got.push_back(t.token.reveal());
      if (got.size() == 10) return;
    });
  // Let every coroutine reach its wait, then release the one refresh.
  io.poll();
  CHECK(fake->calls == 1);
  gate.cancel();
  io.run();
  CHECK(fake->calls == 1);
  REQUIRE(got.size() == 10);
  for (auto& g : got) CHECK(g == "token-1");
}

TEST_CASE("the chain says what each link needed when none applies", "[auth]") {
  asio::io_context io;
  http::Client client(io.get_executor(), {});
  NullLog log;
  CredentialSettings s;
  s.exclude_managed_identity = true;  // no network in this test
  std::vector<std::vector<std::string>> ran;
  Runner no_az = [&](const std::vector<std::string>& argv, std::chrono::milliseconds) {
    ran.push_back(argv);
    RunOutcome r;
    r.not_found = true;
    return r;
  };
  auto chain = make_credential_chain(
      s, client, log, env_of({{"AZURE_CLIENT_ID", "cid"}}), [] { return SysClock::now(); }, no_az);
  try {
    test::run_coro(io, chain->get_token());
    FAIL("no throw");
  } catch (const AuthError& e) {
    std::string m = e.what();
    CHECK(m.find("AZURE_TENANT_ID") != std::string::npos);
    CHECK(m.find("AZURE_CLIENT_SECRET or AZURE_CLIENT_CERTIFICATE_PATH") != std::string::npos);
    CHECK(m.find("ACTIONS_ID_TOKEN_REQUEST_URL") != std::string::npos);
    CHECK(m.find("exclude-managed-identity-credential") != std::string::npos);
    CHECK(m.find("not found on PATH") != std::string::npos);
  }
  REQUIRE(ran.size() == 1);
  CHECK(ran[0] == std::vector<std::string>{"az", "account", "get-access-token", "--output", "json",
                                           "--resource", "https://codesigning.azure.net"});

  // Everything excluded: refused at once.
  s.exclude_azure_cli = s.exclude_environment = s.exclude_workload_identity = true;
  CHECK_THROWS_AS(make_credential_chain(
                      s, client, log, env_of({}), [] { return SysClock::now(); }, no_az),
                  AuthError);
}

TEST_CASE("the Azure CLI link gives the token when it is logged in", "[auth]") {
  asio::io_context io;
  http::Client client(io.get_executor(), {});
  RecordingLog log;
  CredentialSettings s;
  s.exclude_managed_identity = true;
  int runs = 0;
  Runner az = [&](const std::vector<std::string>&, std::chrono::milliseconds) {
    ++runs;
    RunOutcome r;
    r.exit_code = 0;
    r.out = R"({"accessToken":"az-token","expires_on":4102444800})";
    return r;
  };
  auto chain = make_credential_chain(
      s, client, log, env_of({}), [] { return SysClock::now(); }, az);
  CHECK(test::run_coro(io, chain->get_token()).token.reveal() == "az-token");
  CHECK(test::run_coro(io, chain->get_token()).token.reveal() == "az-token");
  CHECK(runs == 1);  // cached
  CHECK(chain->name() == "Azure CLI");
  CHECK(std::find(log.masked.begin(), log.masked.end(), "az-token") != log.masked.end());

  // Not logged in: the reason is reported.
  Runner logged_out = [&](const std::vector<std::string>&, std::chrono::milliseconds) {
    RunOutcome r;
    r.exit_code = 1;
    r.err = "ERROR: Please run 'az login' to setup account.\n";
    return r;
  };
  auto chain2 = make_credential_chain(
      s, client, log, env_of({}), [] { return SysClock::now(); }, logged_out);
  CHECK_THROWS_WITH(test::run_coro(io, chain2->get_token()), Catch::Contains("not logged in"));
}
