// Tests of the emulator's Trusted Signing data plane (src/emulator/signing.cpp) over TLS: the
// three api-versions' routes and shapes, versions refused as configured, the certificate
// endpoints.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include <openssl/pkcs7.h>

#include "common/digest.hpp"

#include "client.hpp"

namespace http = boost::beast::http;
namespace json = boost::json;
namespace fs = std::filesystem;
using namespace tsign;
using namespace tsign::emulator;
using namespace emu_test;

TEST_CASE("the newer :sign api-version wraps the result") {
  Running emu(base_options());
  const Endpoints& ep = emu.ep();
  std::string token = access_token(ep);
  Bytes digest = hash(DigestAlg::sha256, as_bytes("new shape"));
  json::object body{{"signatureAlgorithm", "RS256"}, {"digest", base64_encode(digest)}};
  Reply s = must(fetch(ep, {.method = http::verb::post,
                            .target = profile_path(ep) + ":sign?api-version=2023-06-15-preview",
                            .headers = {{"Authorization", "Bearer " + token}},
                            .body = json::serialize(body),
                            .content_type = "application/json"}));
  REQUIRE(s.status == 202);
  std::string id(s.json().at("id").as_string());
  REQUIRE(s.headers.count("operation-location"));
  std::string location = s.headers["operation-location"];
  std::string target = "/" + location.substr(ep.base_url.size());
  json::object done;
  for (int i = 0; i < 5; ++i) {
    Reply r =
        must(fetch(ep, {.target = target, .headers = {{"Authorization", "Bearer " + token}}}));
    REQUIRE(r.status == 200);
    done = r.json();
    if (done.at("status").as_string() == "Succeeded") break;
    CHECK(done.at("result").is_null());
  }
  REQUIRE(done.at("status").as_string() == "Succeeded");
  const json::object& result = done.at("result").as_object();
  CHECK(result.at("operationId").as_string() == id);
  auto chain = decode_chain(std::string(result.at("signingCertificate").as_string()));
  REQUIRE(!chain.empty());
  CHECK(verify_digest_signature(chain[0].get(), digest,
                                *base64_decode(result.at("signature").as_string()), EVP_sha256()));
}

TEST_CASE("the GA api-version 2024-06-15: :sign, an Azure Core operation, Azure Core errors") {
  Running emu(base_options());
  const Endpoints& ep = emu.ep();
  std::string token = access_token(ep);
  Bytes digest = hash(DigestAlg::sha256, as_bytes("GA contract"));

  Reply s = post_sign(ep, token, ":sign", "2024-06-15", digest);
  REQUIRE(s.status == 202);
  json::object accepted = s.json();
  std::string id(accepted.at("id").as_string());
  CHECK(accepted.at("status").as_string() == "NotStarted");
  CHECK_FALSE(accepted.contains("operationId"));
  CHECK(s.headers["operation-location"] ==
        ep.base_url + profile_path(ep).substr(1) + "/sign/" + id + "?api-version=2024-06-15");

  std::string target = "/" + s.headers["operation-location"].substr(ep.base_url.size());
  std::vector<std::string> states;
  json::object done;
  for (int i = 0; i < 5; ++i) {
    Reply r =
        must(fetch(ep, {.target = target, .headers = {{"Authorization", "Bearer " + token}}}));
    REQUIRE(r.status == 200);
    done = r.json();
    CHECK(done.at("id").as_string() == id);
    states.emplace_back(done.at("status").as_string());
    if (states.back() == "Succeeded") break;
    CHECK_FALSE(done.contains("result"));
  }
  CHECK(states == std::vector<std::string>{"Running", "Succeeded"});
  const json::object& result = done.at("result").as_object();
  auto chain = decode_chain(std::string(result.at("signingCertificate").as_string()));
  REQUIRE(!chain.empty());
  CHECK(verify_digest_signature(chain[0].get(), digest,
                                *base64_decode(result.at("signature").as_string()), EVP_sha256()));

  // The GA contract has no `/sign` POST; its errors are Azure Core's, with x-ms-error-code.
  Reply old_route = post_sign(ep, token, "/sign", "2024-06-15", digest);
  CHECK(old_route.status == 404);
  CHECK(old_route.headers["x-ms-error-code"] == "NotFound");
  CHECK(old_route.json().at("error").at("code").as_string() == "NotFound");
  Reply unknown = must(fetch(ep, {.method = http::verb::post,
                                  .target = "/codesigningaccounts/nope/certificateprofiles/" +
                                            ep.profile + ":sign?api-version=2024-06-15",
                                  .headers = {{"Authorization", "Bearer " + token}},
                                  .body = "{}",
                                  .content_type = "application/json"}));
  CHECK(unknown.status == 404);
  CHECK(unknown.json().at("error").at("message").as_string().find("nope") != std::string::npos);
  // The preview route is still there for the preview version; the 2022 preview has no `:sign`.
  CHECK(post_sign(ep, token, "/sign", "2022-06-15-preview", digest).status == 202);
  CHECK(post_sign(ep, token, ":sign", "2022-06-15-preview", digest).status == 404);

  // eku in the GA's PagedExtendedKeyUsage shape.
  Reply eku = must(fetch(ep, {.target = profile_path(ep) + "/sign/eku?api-version=2024-06-15",
                              .headers = {{"Authorization", "Bearer " + token}}}));
  REQUIRE(eku.status == 200);
  CHECK(eku.json().at("value").as_array().at(0).at("eku").as_string() == "1.3.6.1.5.5.7.3.3");
}

TEST_CASE(
    "the emulator's --api-versions serves only the versions named; the others are refused as "
    "configured") {
  Bytes digest = hash(DigestAlg::sha256, as_bytes("versions"));
  for (int status : {400, 401, 404}) {
    DYNAMIC_SECTION("preview only, the GA version refused with " << status) {
      Options o = fresh_state("versions-" + std::to_string(status));
      o.api_versions = {"2022-06-15-preview"};
      o.unsupported_version_status = status;
      Running emu(o);
      const Endpoints& ep = emu.ep();
      std::string token = access_token(ep);
      Reply refused = post_sign(ep, token, ":sign", "2024-06-15", digest);
      CHECK(refused.status == static_cast<unsigned>(status));
      if (status == 400) {
        CHECK(refused.headers["x-ms-error-code"] == "UnsupportedApiVersion");
        CHECK(refused.json().at("error").at("code").as_string() == "UnsupportedApiVersion");
        CHECK(refused.json().at("error").at("message").as_string().find("'2024-06-15'") !=
              std::string::npos);
      } else {
        CHECK(refused.body.empty());
      }
      CHECK(post_sign(ep, token, "/sign", "2022-06-15-preview", digest).status == 202);

      auto lines = log_lines(ep);
      REQUIRE(lines.size() == 4);  // oidc, entra, the refused sign, the accepted one
      CHECK(lines[2].at("kind").as_string() == "sign");
      CHECK(lines[2].at("api").as_string() == "2024-06-15");
      CHECK(lines[2].at("fault").as_string() == "unsupported-version");
      CHECK(lines[3].at("api").as_string() == "2022-06-15-preview");
      CHECK_FALSE(lines[3].contains("fault"));
    }
  }
  SECTION("GA only: the preview refused") {
    Options o = base_options();
    o.api_versions = {"2024-06-15"};
    Running emu(o);
    const Endpoints& ep = emu.ep();
    std::string token = access_token(ep);
    Reply refused = post_sign(ep, token, "/sign", "2022-06-15-preview", digest);
    CHECK(refused.status == 400);
    CHECK(refused.headers["x-ms-error-code"] == "UnsupportedApiVersion");
    CHECK(post_sign(ep, token, ":sign", "2024-06-15", digest).status == 202);
  }
}

TEST_CASE("certchain, rootcert and eku endpoints") {
  Running emu(base_options());
  const Endpoints& ep = emu.ep();
  std::string token = access_token(ep);
  auto get = [&](const std::string& what) {
    return must(fetch(ep, {.target = profile_path(ep) + "/sign/" + what + kApi,
                           .headers = {{"Authorization", "Bearer " + token}}}));
  };
  Reply chain = get("certchain");
  REQUIRE(chain.status == 200);
  CHECK(chain.headers["content-type"] == "application/pkcs7-mime");
  const unsigned char* p = reinterpret_cast<const unsigned char*>(chain.body.data());
  PKCS7Ptr p7(d2i_PKCS7(nullptr, &p, static_cast<long>(chain.body.size())));
  REQUIRE(p7);
  CHECK(sk_X509_num(p7->d.sign->cert) == 3);

  Reply root = get("rootcert");
  REQUIRE(root.status == 200);
  CHECK(root.headers["content-type"] == "application/x-x509-ca-cert");
  p = reinterpret_cast<const unsigned char*>(root.body.data());
  X509Ptr root_cert(d2i_X509(nullptr, &p, static_cast<long>(root.body.size())));
  REQUIRE(root_cert);
  X509Ptr pem_root = load_pem_cert(ep.state_dir / "codesign-root.pem");
  CHECK(X509_cmp(root_cert.get(), pem_root.get()) == 0);

  Reply eku = get("eku");
  REQUIRE(eku.status == 200);
  json::object eku_json = eku.json();
  const auto& list = eku_json.at("value").as_array().at(0).as_object().at("ekus").as_array();
  CHECK(list.size() == 3);
  CHECK(list.at(0).as_string() == "1.3.6.1.5.5.7.3.3");
}

TEST_CASE("the GA api-version answers a digest of the wrong length in the Azure Core shape") {
  Running emu(base_options());
  const Endpoints& ep = emu.ep();
  std::string token = access_token(ep);
  json::object body{{"signatureAlgorithm", "RS384"},
                    {"digest", base64_encode(hash(DigestAlg::sha256, as_bytes("short")))}};
  Reply r = must(fetch(ep, {.method = http::verb::post,
                            .target = profile_path(ep) + ":sign?api-version=2024-06-15",
                            .headers = {{"Authorization", "Bearer " + token}},
                            .body = json::serialize(body),
                            .content_type = "application/json"}));
  CHECK(r.status == 400);
  CHECK(r.headers["x-ms-error-code"] == "BadRequest");
  CHECK(r.json().at("error").at("target").as_string() == "digest");
  CHECK_FALSE(r.json().contains("errorDetail"));
}
