// Tests of the emulator's identity side (src/emulator/identity.cpp): GitHub OIDC and Entra ID
// refusing what they should, over TLS.
#include <catch2/catch.hpp>

#include <chrono>

#include <openssl/pem.h>
#include <openssl/pkcs12.h>

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

TEST_CASE("check_client_assertion_claims: token URL audience, iss = sub = client id, time range") {
  const std::string url = "https://127.0.0.1:1/tenant-1/oauth2/v2.0/token";
  const auto now = std::chrono::system_clock::time_point(std::chrono::seconds(1'800'000'000));
  const std::int64_t t = 1'800'000'000;
  json::object good{{"aud", url}, {"iss", "cid"}, {"sub", "cid"}, {"nbf", t}, {"exp", t + 600}};
  auto code = [&](json::object claims) {
    auto r = check_client_assertion_claims(claims, url, "cid", now);
    return r ? r->description.substr(0, r->description.find(':')) : std::string("ok");
  };
  CHECK(code(good) == "ok");
  json::object c = good;
  c["aud"] = "api://AzureADTokenExchange";  // a federated audience is not the token URL
  CHECK(code(c) == "AADSTS50013");
  c = good;
  c["iss"] = "other";
  CHECK(code(c) == "AADSTS700021");
  c = good;
  c["sub"] = "other";
  CHECK(code(c) == "AADSTS700021");
  c = good;
  c["exp"] = t - 1;
  CHECK(code(c) == "AADSTS700024");
}

TEST_CASE(
    "certificate_of_assertion: the registered certificate by thumbprint, or x5c from the "
    "trusted issuer with the registered subject") {
  auto rsa_cert = [](const std::string& cn, EVP_PKEY* key, X509* issuer, EVP_PKEY* issuer_key) {
    X509Ptr c(X509_new());
    X509_set_version(c.get(), X509_VERSION_3);
    ASN1_INTEGER_set(X509_get_serialNumber(c.get()), static_cast<long>(random_bytes(1)[0]) + 2);
    X509_NAME* n = X509_get_subject_name(c.get());
    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_UTF8,
                               reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
    X509_set_issuer_name(c.get(), issuer ? X509_get_subject_name(issuer) : n);
    X509_gmtime_adj(X509_getm_notBefore(c.get()), -60);
    X509_gmtime_adj(X509_getm_notAfter(c.get()), 3600);
    X509_set_pubkey(c.get(), key);
    REQUIRE(X509_sign(c.get(), issuer_key ? issuer_key : key, EVP_sha256()) > 0);
    return c;
  };
  EvpPkeyPtr ca_key(EVP_RSA_gen(2048)), other_ca_key(EVP_RSA_gen(2048)), key(EVP_RSA_gen(2048)),
      key2(EVP_RSA_gen(2048));
  X509Ptr ca = rsa_cert("client ca", ca_key.get(), nullptr, nullptr);
  X509Ptr other_ca = rsa_cert("client ca", other_ca_key.get(), nullptr, nullptr);  // same name
  X509Ptr registered = rsa_cert("app", key.get(), ca.get(), ca_key.get());
  X509Ptr renewed = rsa_cert("app", key2.get(), ca.get(), ca_key.get());  // same subject, new key
  X509Ptr foreign = rsa_cert("app", key2.get(), other_ca.get(), other_ca_key.get());
  X509Ptr stranger = rsa_cert("someone", key2.get(), ca.get(), ca_key.get());
  auto thumb = [](X509* c) { return base64url_encode(hash(DigestAlg::sha256, to_der(c))); };
  auto x5c = [](X509* c) { return json::array{json::string(base64_encode(to_der(c)))}; };

  auto check = [&](json::object header) {
    X509Ptr signer;
    auto r = certificate_of_assertion(header, registered.get(), ca.get(), signer);
    if (r) return r->description.substr(0, r->description.find(':'));
    REQUIRE(signer);
    return std::string(X509_cmp(signer.get(), registered.get()) == 0 ? "registered" : "x5c");
  };
  CHECK(check({{"x5t#S256", thumb(registered.get())}}) == "registered");
  CHECK(check({{"x5t#S256", thumb(renewed.get())}}) == "AADSTS700027");
  CHECK(check({}) == "AADSTS700027");
  // Subject name + issuer: a renewed certificate is accepted when it comes with x5c...
  CHECK(check({{"x5t#S256", thumb(renewed.get())}, {"x5c", x5c(renewed.get())}}) == "x5c");
  // ...but not one with the same subject from another issuer of the same name, nor another
  // subject from the right issuer.
  X509Ptr signer;
  auto r =
      certificate_of_assertion({{"x5c", x5c(foreign.get())}}, registered.get(), ca.get(), signer);
  REQUIRE(r);
  CHECK(r->status == http::status::unauthorized);
  CHECK_THAT(r->description, Catch::StartsWith("AADSTS700027") && Catch::Contains("issuer"));
  CHECK(check({{"x5c", x5c(stranger.get())}}) == "AADSTS700027");
  CHECK(check({{"x5c", json::array{"not base64 DER"}}}) == "AADSTS50027");
  CHECK(check({{"x5c", "a string"}}) == "AADSTS50027");
}

TEST_CASE("the client certificate grant: PEM and PFX written, thumbprint and x5c assertions") {
  Running emu(base_options());
  const Endpoints& ep = emu.ep();
  // The files tsign is pointed at, and the exports naming them.
  std::string pem = read_file(ep.state_dir / "client-cert.pem");
  CHECK(pem.find("BEGIN CERTIFICATE") != std::string::npos);
  CHECK(pem.find("PRIVATE KEY") != std::string::npos);
  CHECK(!ep.client_certificate_password.empty());
  std::string env = read_file(ep.state_dir / "env");
  CHECK(env.find("TSIGN_EMULATOR_CLIENT_CERT_PEM=") != std::string::npos);
  CHECK(env.find("TSIGN_EMULATOR_CLIENT_CERT_PFX=") != std::string::npos);
  CHECK(env.find("TSIGN_EMULATOR_CLIENT_CERT_PASSWORD='" + ep.client_certificate_password + "'") !=
        std::string::npos);
  CHECK(env.find("AZURE_CLIENT_CERTIFICATE_PATH") == std::string::npos);
  {
    std::string pfx = read_file(ep.state_dir / "client-cert.pfx");
    const auto* p = reinterpret_cast<const unsigned char*>(pfx.data());
    OsslPtr<PKCS12, PKCS12_free> p12(d2i_PKCS12(nullptr, &p, static_cast<long>(pfx.size())));
    REQUIRE(p12);
    CHECK(PKCS12_verify_mac(p12.get(), ep.client_certificate_password.c_str(), -1) == 1);
  }

  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  BioPtr kbio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  EvpPkeyPtr key(PEM_read_bio_PrivateKey(kbio.get(), nullptr, nullptr, nullptr));
  REQUIRE(cert);
  REQUIRE(key);
  auto now = std::chrono::duration_cast<std::chrono::seconds>(
                 std::chrono::system_clock::now().time_since_epoch())
                 .count();
  const std::string url = ep.base_url + ep.tenant_id + "/oauth2/v2.0/token";
  json::object claims{{"aud", url}, {"iss", ep.client_id}, {"sub", ep.client_id},
                      {"jti", "j"}, {"nbf", now},          {"exp", now + 600}};
  std::string thumb = base64url_encode(hash(DigestAlg::sha256, to_der(cert.get())));
  auto form = [&](const std::string& jwt) {
    return std::vector<std::pair<std::string, std::string>>{
        {"client_id", ep.client_id},
        {"scope", "https://codesigning.azure.net/.default"},
        {"client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
        {"client_assertion", jwt},
        {"grant_type", "client_credentials"}};
  };
  Reply ok = entra(ep, form(jwt_sign(key.get(), {{"alg", "RS256"}, {"x5t#S256", thumb}}, claims)));
  CHECK(ok.status == 200);
  CHECK(ok.json().contains("access_token"));
  json::object with_chain{{"alg", "RS256"},
                          {"x5t#S256", thumb},
                          {"x5c", json::array{json::string(base64_encode(to_der(cert.get())))}}};
  CHECK(entra(ep, form(jwt_sign(key.get(), with_chain, claims))).status == 200);
  // The right certificate named, another key signing.
  EvpPkeyPtr other(EVP_RSA_gen(2048));
  Reply forged = entra(ep, form(jwt_sign(other.get(), with_chain, claims)));
  CHECK(forged.status == 401);
  CHECK_THAT(std::string(forged.json().at("error_description").as_string()),
             Catch::StartsWith("AADSTS700027") && Catch::Contains("invalid signature"));
  // Signed right, for the federated audience instead of the token URL.
  json::object wrong_aud = claims;
  wrong_aud["aud"] = "api://AzureADTokenExchange";
  Reply aud =
      entra(ep, form(jwt_sign(key.get(), {{"alg", "RS256"}, {"x5t#S256", thumb}}, wrong_aud)));
  CHECK(aud.status == 400);
  CHECK_THAT(std::string(aud.json().at("error_description").as_string()),
             Catch::StartsWith("AADSTS50013"));
}
