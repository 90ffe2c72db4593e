// Tests of the emulator's identity side (src/emulator/identity.cpp): GitHub OIDC and Entra ID
// refusing what they should, over TLS.
#include <catch2/catch.hpp>

#include <chrono>

#include <openssl/pem.h>

#include "common/digest.hpp"
#include "emulator/identity.hpp"
#include "emulator/jwt.hpp"

#include "client.hpp"

namespace http = boost::beast::http;
namespace json = boost::json;
namespace fs = std::filesystem;
using namespace tsign;
using namespace tsign::emulator;
using namespace emu_test;

TEST_CASE("credentials and requests the services refuse") {
  Running emu(base_options());
  const Endpoints& ep = emu.ep();

  SECTION("GitHub: wrong request token -> 401") {
    CHECK(github_token(ep, "not-the-token").status == 401);
    CHECK(must(fetch(ep, {.target = "/github/token?audience=x"})).status == 401);
  }
  SECTION("Entra: an expired assertion -> AADSTS700024") {
    // An assertion the emulator's OIDC key signed, but expired a minute ago.
    std::string key_pem = read_file(ep.state_dir / "oidc.key");
    BioPtr bio(BIO_new_mem_buf(key_pem.data(), static_cast<int>(key_pem.size())));
    EvpPkeyPtr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
    REQUIRE(key);
    auto now = std::chrono::duration_cast<std::chrono::seconds>(
                   std::chrono::system_clock::now().time_since_epoch())
                   .count();
    std::string expired = jwt_sign(key.get(), {{"alg", "RS256"}, {"typ", "JWT"}},
                                   {{"iss", ep.base_url + "github"},
                                    {"sub", "repo:tsign-emulator/demo:ref:refs/heads/main"},
                                    {"aud", "api://AzureADTokenExchange"},
                                    {"iat", now - 400},
                                    {"nbf", now - 400},
                                    {"exp", now - 60}});
    Reply r = entra(ep, assertion_form(ep, expired));
    CHECK((r.status == 400 || r.status == 401));
    CHECK(r.json().at("error").as_string() == "invalid_client");
    CHECK(r.json()
              .at("error_description")
              .as_string()
              .starts_with("AADSTS700024: Client assertion is not within its valid time range."));
  }
  SECTION("Entra: an assertion signed by another key -> invalid signature") {
    EvpPkeyPtr other(EVP_RSA_gen(2048));
    std::string forged = jwt_sign(other.get(), {{"alg", "RS256"}},
                                  {{"iss", ep.base_url + "github"},
                                   {"sub", "repo:tsign-emulator/demo:ref:refs/heads/main"},
                                   {"aud", "api://AzureADTokenExchange"},
                                   {"exp", 4102444800}});
    Reply r = entra(ep, assertion_form(ep, forged));
    CHECK(r.status == 401);
    CHECK(r.json().at("error_description").as_string().starts_with("AADSTS700027"));
  }
  SECTION("Entra: client secret grant, right and wrong") {
    std::vector<std::pair<std::string, std::string>> form{
        {"client_id", ep.client_id},
        {"scope", "https://codesigning.azure.net/.default"},
        {"client_secret", ep.client_secret},
        {"grant_type", "client_credentials"}};
    CHECK(read_file(ep.state_dir / "client-secret") == ep.client_secret + "\n");
    CHECK(entra(ep, form).status == 200);
    form[2].second = "wrong";
    Reply r = entra(ep, form);
    CHECK(r.status == 401);
    CHECK(r.json().at("error").as_string() == "invalid_client");
    form[2].second = ep.client_secret;
    form[1].second = "https://management.azure.com/.default";
    CHECK(entra(ep, form).json().at("error").as_string() == "invalid_scope");
    form[1].second = "https://codesigning.azure.net/.default";
    form[0].second = "someone-else";
    CHECK(entra(ep, form).json().at("error").as_string() == "unauthorized_client");
    form[0].second = ep.client_id;
    CHECK(entra(ep, form, "other-tenant").status == 400);
  }
  SECTION("Trusted Signing: no token, unknown token -> 401") {
    Bytes d = hash(DigestAlg::sha256, as_bytes("x"));
    CHECK(sign_request(ep, "", "RS256", d).status == 401);
    Reply r = sign_request(ep, "emu.made-up", "RS256", d);
    CHECK(r.status == 401);
    CHECK(r.json().at("errorDetail").at("code").as_string() == "Unauthorized");
  }
  SECTION("Trusted Signing: malformed requests -> 400/404 with errorDetail") {
    std::string token = access_token(ep);
    Bytes d256 = hash(DigestAlg::sha256, as_bytes("x"));
    Reply wrong_len = sign_request(ep, token, "RS384", d256);
    CHECK(wrong_len.status == 400);
    CHECK(wrong_len.json().at("errorDetail").at("target").as_string() == "digest");
    CHECK(sign_request(ep, token, "ES256", d256).status == 400);

    Reply bad_json = must(fetch(ep, {.method = http::verb::post,
                                     .target = profile_path(ep) + "/sign" + kApi,
                                     .headers = {{"Authorization", "Bearer " + token}},
                                     .body = "{\"signatureAlgorithm\":",
                                     .content_type = "application/json"}));
    CHECK(bad_json.status == 400);
    CHECK(bad_json.json().at("errorDetail").at("code").as_string() == "BadRequest");

    Reply no_api = must(fetch(ep, {.method = http::verb::post,
                                   .target = profile_path(ep) + "/sign",
                                   .headers = {{"Authorization", "Bearer " + token}},
                                   .body = "{}",
                                   .content_type = "application/json"}));
    CHECK(no_api.status == 400);

    Reply unknown = must(fetch(ep, {.method = http::verb::post,
                                    .target = "/codesigningaccounts/nope/certificateprofiles/" +
                                              ep.profile + "/sign" + kApi,
                                    .headers = {{"Authorization", "Bearer " + token}},
                                    .body = "{}",
                                    .content_type = "application/json"}));
    CHECK(unknown.status == 404);
    CHECK(unknown.json().at("errorDetail").at("target").as_string() == "nope");

    CHECK(poll_request(ep, token, "00000000-0000-0000-0000-000000000000").status == 404);
  }
  SECTION("an expired access token -> 401") {
    Options o = base_options();
    o.access_token_lifetime = std::chrono::seconds(0);  // expired as soon as issued
    Running short_lived(o);
    std::string token = access_token(short_lived.ep());
    Bytes d = hash(DigestAlg::sha256, as_bytes("x"));
    Reply r = sign_request(short_lived.ep(), token, "RS256", d);
    CHECK(r.status == 401);
    CHECK(r.json().at("errorDetail").at("message").as_string().find("expired") !=
          std::string::npos);
    // RFC 6750 §3.1, as Entra-protected Azure services say it.
    CHECK_THAT(r.headers["www-authenticate"],
               Catch::StartsWith("Bearer ") && Catch::Contains(R"(error="invalid_token")") &&
                   Catch::Contains(R"(error_description="The access token expired")"));
    Reply unknown = sign_request(short_lived.ep(), "emu.made-up", "RS256", d);
    CHECK_THAT(unknown.headers["www-authenticate"], Catch::Contains(R"(error="invalid_token")"));
    Reply none = sign_request(short_lived.ep(), "", "RS256", d);
    CHECK_THAT(none.headers["www-authenticate"], !Catch::Contains("error="));
  }
}

// The checks of an Entra token request, without a socket (src/emulator/identity.hpp).

TEST_CASE("parse_form: form encoding, the first occurrence of a name wins") {
  auto form = parse_form("a=1&b=x+y%2Fz&a=2&empty=");
  REQUIRE(form);
  CHECK(form->at("a") == "1");
  CHECK(form->at("b") == "x y/z");
  CHECK(form->at("empty").empty());
  CHECK_FALSE(parse_form("a=%zz"));
}

TEST_CASE("check_client: grant_type, client_id and scope, the first missing or wrong refuses") {
  Form good{{"grant_type", "client_credentials"},
            {"client_id", "cid"},
            {"scope", "https://codesigning.azure.net/.default"}};
  CHECK_FALSE(check_client(good, "cid", "tenant"));
  auto refusal = [&](const std::string& name, const std::optional<std::string>& value) {
    Form f = good;
    if (value)
      f[name] = *value;
    else
      f.erase(name);
    auto r = check_client(f, "cid", "tenant");
    REQUIRE(r);
    return *r;
  };
  CHECK(refusal("grant_type", std::nullopt).description ==
        "AADSTS900144: The request body must contain the following parameter: 'grant_type'.");
  CHECK(refusal("grant_type", "password").error == "unsupported_grant_type");
  CHECK(refusal("client_id", std::nullopt).error == "invalid_request");
  auto other = refusal("client_id", "other");
  CHECK(other.error == "unauthorized_client");
  CHECK_THAT(other.description, Catch::Contains("'other'") && Catch::Contains("'tenant'"));
  CHECK(refusal("scope", "https://management.azure.com/.default").error == "invalid_scope");
  CHECK(refusal("scope", std::nullopt).status == http::status::bad_request);
  // grant_type is looked at first.
  Form none;
  CHECK(check_client(none, "cid", "t")->description.find("'grant_type'") != std::string::npos);
}

TEST_CASE("check_assertion_claims: audience, issuer and subject, time range") {
  const std::string iss = "https://127.0.0.1:1/github";
  const std::string sub = "repo:o/r:ref:refs/heads/main";
  const auto now = std::chrono::system_clock::time_point(std::chrono::seconds(1'800'000'000));
  const std::int64_t t = 1'800'000'000;
  json::object good{
      {"aud", "api://AzureADTokenExchange"}, {"iss", iss}, {"sub", sub}, {"exp", t + 60}};
  auto code = [&](json::object claims) {
    auto r = check_assertion_claims(claims, iss, sub, now);
    return r ? r->description.substr(0, r->description.find(':')) : std::string("ok");
  };
  CHECK(code(good) == "ok");
  json::object c = good;
  c["aud"] = json::array{"x", "api://AzureADTokenExchange"};
  CHECK(code(c) == "ok");
  c["aud"] = "api://other";
  CHECK(code(c) == "AADSTS700212");
  c = good;
  c["sub"] = "repo:o/r:ref:refs/heads/dev";
  CHECK(code(c) == "AADSTS70021");
  c = good;
  c["exp"] = t;  // expired at this very second: no tolerance after exp
  CHECK(code(c) == "AADSTS700024");
  c = good;
  c.erase("exp");
  CHECK(code(c) == "AADSTS700024");
  c = good;
  c["nbf"] = t + 300;  // five minutes of clock skew before nbf are fine
  CHECK(code(c) == "ok");
  c["nbf"] = t + 301;
  CHECK(code(c) == "AADSTS700024");
  auto r = check_assertion_claims(c, iss, sub, now);
  REQUIRE(r);
  CHECK_THAT(r->description, Catch::Contains("Current time: 2027-01-15T08:00:00.000Z"));
}
