// Tests of the emulator's transport and state (src/emulator/server.cpp): the whole credential
// and signing flow over TLS, requests served concurrently, the request log, a restart on the same
// state directory, and the routing of paths to its parts.
#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <thread>

#include <openssl/x509v3.h>

#include "common/digest.hpp"
#include "emulator/answer.hpp"
#include "emulator/jwt.hpp"

#include "client.hpp"

namespace http = boost::beast::http;
namespace json = boost::json;
namespace fs = std::filesystem;
using namespace tsign;
using namespace tsign::emulator;
using namespace emu_test;

TEST_CASE("OIDC -> Entra -> sign -> poll gives a signature the returned leaf verifies") {
  Running emu(base_options());
  const Endpoints& ep = emu.ep();
  REQUIRE(ep.https_port != 0);
  REQUIRE(ep.tsa_port != 0);

  // The GitHub token: RS256 JWT with the requested audience, 5 minutes.
  Reply gh = github_token(ep, ep.id_token_request_token);
  REQUIRE(gh.status == 200);
  std::string jwt(gh.json().at("value").as_string());
  auto parsed = jwt_parse(jwt, nullptr);
  REQUIRE(parsed);
  CHECK(parsed->header.at("alg").as_string() == "RS256");
  CHECK(parsed->claims.at("aud").as_string() == "api://AzureADTokenExchange");
  CHECK(parsed->claims.at("sub").as_string() == "repo:tsign-emulator/demo:ref:refs/heads/main");
  CHECK(parsed->claims.at("exp").as_int64() - parsed->claims.at("iat").as_int64() == 300);

  Reply tok = entra(ep, assertion_form(ep, jwt));
  REQUIRE(tok.status == 200);
  CHECK(tok.json().at("token_type").as_string() == "Bearer");
  CHECK(tok.json().at("expires_in").as_int64() == 3600);
  std::string token(tok.json().at("access_token").as_string());

  for (auto [alg, dalg] : {std::pair{"RS256", DigestAlg::sha256},
                           {"RS384", DigestAlg::sha384},
                           {"RS512", DigestAlg::sha512}}) {
    SECTION(alg) {
      Bytes digest = hash(dalg, as_bytes(std::string("signed attributes ") + alg));
      Reply s = sign_request(ep, token, alg, digest);
      REQUIRE(s.status == 202);
      json::object accepted = s.json();
      CHECK(accepted.at("status").as_string() == "InProgress");
      CHECK(accepted.at("signature").is_null());
      CHECK(accepted.at("signingCertificate").is_null());
      std::string id(accepted.at("operationId").as_string());
      CHECK(s.headers.count("retry-after") == 1);
      CHECK(s.headers["operation-location"] ==
            ep.base_url + profile_path(ep).substr(1) + "/sign/" + id + kApi);

      auto [done, in_progress] = poll_until_done(ep, token, id);
      CHECK(in_progress == 1);  // --polls-before-success defaults to 1
      REQUIRE(done.at("status").as_string() == "Succeeded");
      auto sig = base64_decode(done.at("signature").as_string());
      REQUIRE(sig);
      CHECK(sig->size() == 384);  // RSA-3072

      auto chain = decode_chain(std::string(done.at("signingCertificate").as_string()));
      REQUIRE(chain.size() == 3);
      CHECK(verify_digest_signature(chain[0].get(), digest, *sig, evp_md(dalg)));
      CHECK_FALSE(verify_digest_signature(chain[0].get(), hash(dalg, as_bytes("other")), *sig,
                                          evp_md(dalg)));
      CHECK(chain_verifies(chain, ep.state_dir / "codesign-root.pem"));

      auto ekus = ekus_of(chain[0].get());
      CHECK(std::find(ekus.begin(), ekus.end(), "1.3.6.1.5.5.7.3.3") != ekus.end());
      CHECK(std::find(ekus.begin(), ekus.end(), "1.3.6.1.4.1.311.97.1.0") != ekus.end());
      CHECK(std::count_if(ekus.begin(), ekus.end(), [](const std::string& e) {
              return e.starts_with("1.3.6.1.4.1.311.97.") && e != "1.3.6.1.4.1.311.97.1.0";
            }) == 1);
      // A 3-day leaf.
      int days = 0, secs = 0;
      ASN1_TIME_diff(&days, &secs, X509_get0_notBefore(chain[0].get()),
                     X509_get0_notAfter(chain[0].get()));
      CHECK(days == 3);
      // Present, and not a CA (freed: the ASan run's leak check covers the tests too).
      auto* bc = static_cast<BASIC_CONSTRAINTS*>(
          X509_get_ext_d2i(chain[0].get(), NID_basic_constraints, nullptr, nullptr));
      REQUIRE(bc != nullptr);
      CHECK(bc->ca == 0);
      BASIC_CONSTRAINTS_free(bc);
    }
  }
}

TEST_CASE("many requests in flight at once are all served") {
  Options o = base_options();
  o.latency = std::chrono::milliseconds(400);  // keeps them in flight together
  Running emu(o);
  const Endpoints& ep = emu.ep();
  std::string token = access_token(ep);
  constexpr int kClients = 48;
  std::vector<int> status(kClients, 0);
  std::vector<std::thread> clients;
  auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < kClients; ++i)
    clients.emplace_back([&, i] {
      try {
        Bytes d = hash(DigestAlg::sha256, as_bytes(std::to_string(i)));
        json::object body{{"signatureAlgorithm", "RS256"}, {"digest", base64_encode(d)}};
        auto r = fetch(ep, {.method = http::verb::post,
                            .target = profile_path(ep) + "/sign" + kApi,
                            .headers = {{"Authorization", "Bearer " + token}},
                            .body = json::serialize(body),
                            .content_type = "application/json"});
        status[static_cast<std::size_t>(i)] = r ? static_cast<int>(r->status) : -1;
      } catch (...) {
        status[static_cast<std::size_t>(i)] = -2;
      }
    });
  for (auto& t : clients) t.join();
  auto took = std::chrono::steady_clock::now() - start;
  CHECK(std::count(status.begin(), status.end(), 202) == kClients);
  // Served concurrently: one after the other would take kClients x latency (19 s).
  CHECK(took < std::chrono::milliseconds(400) * kClients / 2);
}

TEST_CASE("the request log names each request and holds no secret") {
  { Running warm(base_options()); }  // makes sure the shared keys exist
  Options o = base_options();
  o.state_dir = shared_state_dir() / "log-test";
  fs::remove_all(o.state_dir);
  fs::create_directories(o.state_dir);
  // Its keys come from a copy of the shared directory's, to skip generating them again.
  for (const auto& e : fs::directory_iterator(shared_state_dir()))
    if (e.is_regular_file() && (e.path().extension() == ".key" || e.path().extension() == ".pem"))
      fs::copy_file(e.path(), o.state_dir / e.path().filename());
  Running emu(o);
  const Endpoints& ep = emu.ep();
  Reply gh = github_token(ep, ep.id_token_request_token);
  std::string jwt(gh.json().at("value").as_string());
  Reply tok = entra(ep, assertion_form(ep, jwt));
  std::string token(tok.json().at("access_token").as_string());
  Reply s = sign_request(ep, token, "RS256", hash(DigestAlg::sha256, as_bytes("log")));
  poll_until_done(ep, token, std::string(s.json().at("operationId").as_string()));
  auto [query, nonce] = timestamp_query(Bytes(32, 7), EVP_sha256());
  must(fetch(ep, {.method = http::verb::post,
                  .target = "/",
                  .body = to_string(query),
                  .content_type = "application/timestamp-query",
                  .tsa = true}));

  std::string text = read_file(ep.state_dir / "requests.log");
  for (const std::string& secret : {ep.id_token_request_token, ep.client_secret, jwt, token})
    CHECK(text.find(secret) == std::string::npos);
  CHECK(text.find("audience") == std::string::npos);  // no query strings

  auto lines = log_lines(ep);
  std::vector<std::string> kinds;
  for (const auto& l : lines) kinds.emplace_back(l.at("kind").as_string());
  CHECK(kinds == std::vector<std::string>{"oidc", "entra", "sign", "poll", "poll", "tsa"});
  CHECK(lines.at(2).at("status").as_int64() == 202);
  CHECK(lines.at(2).at("method").as_string() == "POST");
  CHECK(lines.at(2).at("path").as_string() == profile_path(ep) + "/sign");
}

TEST_CASE("a restart on the same state directory keeps the roots and identity") {
  std::string root, tsa_root, tenant, client;
  {
    Running first(base_options());
    root = read_file(first.ep().state_dir / "codesign-root.pem");
    tsa_root = read_file(first.ep().state_dir / "tsa-root.pem");
    tenant = first.ep().tenant_id;
    client = first.ep().client_id;
  }
  Running second(base_options());
  const Endpoints& ep = second.ep();
  CHECK(read_file(ep.state_dir / "codesign-root.pem") == root);
  CHECK(read_file(ep.state_dir / "tsa-root.pem") == tsa_root);
  CHECK(ep.tenant_id == tenant);
  CHECK(ep.client_id == client);
  std::string env = read_file(ep.state_dir / "env");
  CHECK(env.find("export TSIGN_EMULATOR_ENDPOINT='" + ep.base_url + "'") != std::string::npos);
  CHECK(env.find("export SSL_CERT_FILE=") != std::string::npos);
  CHECK(env.find("AZURE_CLIENT_SECRET") == std::string::npos);
  CHECK(env.find("export ACTIONS_ID_TOKEN_REQUEST_URL='" + ep.base_url +
                 "github/token?api-version=2.0'") != std::string::npos);
}

TEST_CASE("route: which part of the emulator serves a path") {
  CHECK(route({"github", "token"}) == Route::github_token);
  CHECK(route({"tenant-id", "oauth2", "v2.0", "token"}) == Route::entra_token);
  CHECK(route({"codesigningaccounts"}) == Route::signing);
  CHECK(route({"codesigningaccounts", "a", "certificateprofiles", "p:sign"}) == Route::signing);
  CHECK(route({}) == Route::none);
  CHECK(route({"github", "token", "x"}) == Route::none);
  CHECK(route({"t", "oauth2", "v1.0", "token"}) == Route::none);
}

TEST_CASE("every_nth: the counting of the fault options") {
  CHECK_FALSE(every_nth(0, 5));
  CHECK_FALSE(every_nth(-1, 5));
  CHECK_FALSE(every_nth(3, 0));  // a request not of the counted kind
  CHECK(every_nth(1, 1));
  CHECK_FALSE(every_nth(3, 2));
  CHECK(every_nth(3, 6));
}
