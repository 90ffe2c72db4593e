// Tests of `tsign emulator` (src/emulator/): the emulator runs in-process on a thread and is
// talked to over loopback with a small synchronous Beast client that verifies its TLS
// certificate against STATE/tls-ca.pem, as a real client would.
#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <thread>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/json.hpp>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/ts.h>
#include <openssl/x509v3.h>

#include "common/bytes.hpp"
#include "common/digest.hpp"
#include "common/error.hpp"
#include "common/ossl.hpp"
#include "emulator/emulator.hpp"
#include "emulator/jwt.hpp"

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace json = boost::json;
namespace fs = std::filesystem;
using tcp = net::ip::tcp;
using namespace tsign;
using namespace tsign::emulator;

namespace {

constexpr auto kApi = "?api-version=2022-06-15-preview";

// Keys are generated once per test run and reused by every emulator started on this directory
// (that reuse is itself under test), which keeps the suite fast.
struct TempDir {
  fs::path path;
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};
fs::path shared_state_dir() {
  static const TempDir dir{fs::temp_directory_path() /
                           ("tsign-emu-test-" + to_hex(random_bytes(6)))};
  return dir.path;
}

Options base_options() {
  Options o;
  o.state_dir = shared_state_dir();
  return o;
}

// An emulator serving on its own thread for the lifetime of the object.
struct Running {
  Server server;
  std::thread thread;
  explicit Running(Options o) : server(std::move(o)), thread([this] { server.run(); }) {}
  ~Running() {
    server.stop();
    thread.join();
  }
  const Endpoints& ep() const { return server.endpoints(); }
};

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

struct Reply {
  unsigned status = 0;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
  json::object json() const {
    auto v = json::parse(body);
    return v.as_object();
  }
};

struct Call {
  http::verb method = http::verb::get;
  std::string target;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  std::string content_type;
  bool tsa = false;  // the plain-HTTP time-stamp port
};

// One request on a fresh connection; nullopt when the server closes it without answering.
std::optional<Reply> fetch(const Endpoints& ep, const Call& c) {
  net::io_context ioc;
  http::request<http::string_body> req{c.method, c.target, 11};
  req.set(http::field::host, "127.0.0.1");
  for (const auto& [k, v] : c.headers) req.set(k, v);
  if (!c.content_type.empty()) req.set(http::field::content_type, c.content_type);
  req.body() = c.body;
  req.keep_alive(false);
  req.prepare_payload();

  tcp::endpoint endpoint(net::ip::make_address("127.0.0.1"), c.tsa ? ep.tsa_port : ep.https_port);
  beast::flat_buffer buffer;
  http::response<http::string_body> res;
  boost::system::error_code ec;
  if (c.tsa) {
    beast::tcp_stream stream(ioc);
    stream.connect(endpoint);
    http::write(stream, req);
    http::read(stream, buffer, res, ec);
  } else {
    net::ssl::context ctx(net::ssl::context::tls_client);
    ctx.load_verify_file((ep.state_dir / "tls-ca.pem").string());
    ctx.set_verify_mode(net::ssl::verify_peer);
    beast::ssl_stream<beast::tcp_stream> stream(ioc, ctx);
    stream.set_verify_callback(net::ssl::host_name_verification("127.0.0.1"));
    beast::get_lowest_layer(stream).connect(endpoint);
    stream.handshake(net::ssl::stream_base::client);
    http::write(stream, req);
    http::read(stream, buffer, res, ec);
  }
  if (ec) return std::nullopt;
  Reply r;
  r.status = res.result_int();
  for (const auto& f : res) {
    std::string name(f.name_string());
    for (auto& ch : name) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    r.headers[name] = std::string(f.value());
  }
  r.body = res.body();
  return r;
}

Reply must(const std::optional<Reply>& r) {
  REQUIRE(r.has_value());
  return *r;
}

std::string form_escape(const std::string& s) {
  std::string out;
  for (unsigned char ch : s) {
    if (std::isalnum(ch) || ch == '-' || ch == '_' || ch == '.' || ch == '~') {
      out += static_cast<char>(ch);
    } else {
      char buf[4];
      std::snprintf(buf, sizeof buf, "%%%02X", ch);
      out += buf;
    }
  }
  return out;
}

Reply github_token(const Endpoints& ep, const std::string& request_token) {
  return must(fetch(ep, {.target = "/github/token?api-version=2.0&audience=" +
                                   form_escape("api://AzureADTokenExchange"),
                         .headers = {{"Authorization", "Bearer " + request_token}}}));
}

Reply entra(const Endpoints& ep, const std::vector<std::pair<std::string, std::string>>& fields,
            const std::string& tenant = {}) {
  std::string body;
  for (const auto& [k, v] : fields) body += (body.empty() ? "" : "&") + k + "=" + form_escape(v);
  return must(
      fetch(ep, {.method = http::verb::post,
                 .target = "/" + (tenant.empty() ? ep.tenant_id : tenant) + "/oauth2/v2.0/token",
                 .body = body,
                 .content_type = "application/x-www-form-urlencoded"}));
}

std::vector<std::pair<std::string, std::string>> assertion_form(const Endpoints& ep,
                                                                const std::string& assertion) {
  return {{"client_id", ep.client_id},
          {"scope", "https://codesigning.azure.net/.default"},
          {"client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
          {"client_assertion", assertion},
          {"grant_type", "client_credentials"}};
}

// The default credential path: GitHub OIDC token -> federated Entra token.
std::string access_token(const Endpoints& ep) {
  Reply gh = github_token(ep, ep.id_token_request_token);
  REQUIRE(gh.status == 200);
  Reply tok = entra(ep, assertion_form(ep, std::string(gh.json().at("value").as_string())));
  REQUIRE(tok.status == 200);
  return std::string(tok.json().at("access_token").as_string());
}

std::string profile_path(const Endpoints& ep) {
  return "/codesigningaccounts/" + ep.account + "/certificateprofiles/" + ep.profile;
}

Reply sign_request(const Endpoints& ep, const std::string& token, const std::string& alg,
                   const Bytes& digest) {
  json::object body{{"signatureAlgorithm", alg}, {"digest", base64_encode(digest)}};
  return must(fetch(ep, {.method = http::verb::post,
                         .target = profile_path(ep) + "/sign" + kApi,
                         .headers = {{"Authorization", "Bearer " + token}},
                         .body = json::serialize(body),
                         .content_type = "application/json"}));
}

Reply poll_request(const Endpoints& ep, const std::string& token, const std::string& id) {
  return must(fetch(ep, {.target = profile_path(ep) + "/sign/" + id + kApi,
                         .headers = {{"Authorization", "Bearer " + token}}}));
}

// Polls until the operation leaves InProgress; returns the final answer's JSON and how many
// InProgress answers came first.
std::pair<json::object, int> poll_until_done(const Endpoints& ep, const std::string& token,
                                             const std::string& id) {
  for (int in_progress = 0; in_progress < 20; ++in_progress) {
    Reply r = poll_request(ep, token, id);
    REQUIRE(r.status == 200);
    json::object o = r.json();
    if (o.at("status").as_string() != "InProgress") return {o, in_progress};
  }
  FAIL("the operation never finished");
  return {};
}

std::vector<X509Ptr> decode_chain(const std::string& signing_certificate) {
  auto mime = base64_decode(signing_certificate);
  REQUIRE(mime.has_value());
  std::string text = to_string(*mime);
  CHECK(text.find("\r\n") != std::string::npos);  // MIME line breaks, CRLF
  auto der = base64_decode(text);
  REQUIRE(der.has_value());
  const unsigned char* p = der->data();
  PKCS7Ptr p7(d2i_PKCS7(nullptr, &p, static_cast<long>(der->size())));
  REQUIRE(p7);
  REQUIRE(PKCS7_type_is_signed(p7.get()));
  std::vector<X509Ptr> out;
  STACK_OF(X509)* certs = p7->d.sign->cert;
  for (int i = 0; i < sk_X509_num(certs); ++i) {
    X509* c = sk_X509_value(certs, i);
    X509_up_ref(c);
    out.emplace_back(c);
  }
  return out;
}

std::vector<std::string> ekus_of(X509* cert) {
  std::vector<std::string> out;
  auto* eku =
      static_cast<EXTENDED_KEY_USAGE*>(X509_get_ext_d2i(cert, NID_ext_key_usage, nullptr, nullptr));
  if (!eku) return out;
  for (int i = 0; i < sk_ASN1_OBJECT_num(eku); ++i) {
    char buf[128];
    OBJ_obj2txt(buf, sizeof buf, sk_ASN1_OBJECT_value(eku, i), 1);
    out.emplace_back(buf);
  }
  EXTENDED_KEY_USAGE_free(eku);
  return out;
}

X509Ptr load_pem_cert(const fs::path& p) {
  std::string text = read_file(p);
  BioPtr bio(BIO_new_mem_buf(text.data(), static_cast<int>(text.size())));
  return X509Ptr(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
}

bool verify_digest_signature(X509* leaf, const Bytes& digest, const Bytes& sig, const EVP_MD* md) {
  EVP_PKEY* pub = X509_get0_pubkey(leaf);
  OsslPtr<EVP_PKEY_CTX, EVP_PKEY_CTX_free> ctx(EVP_PKEY_CTX_new(pub, nullptr));
  bool ok = ctx && EVP_PKEY_verify_init(ctx.get()) == 1 &&
            EVP_PKEY_CTX_set_rsa_padding(ctx.get(), RSA_PKCS1_PADDING) == 1 &&
            EVP_PKEY_CTX_set_signature_md(ctx.get(), md) == 1 &&
            EVP_PKEY_verify(ctx.get(), sig.data(), sig.size(), digest.data(), digest.size()) == 1;
  ERR_clear_error();
  return ok;
}

// Verifies the chain leaf <- intermediate <- STATE/codesign-root.pem.
bool chain_verifies(const std::vector<X509Ptr>& chain, const fs::path& root_pem) {
  X509StorePtr store(X509_STORE_new());
  X509Ptr root = load_pem_cert(root_pem);
  X509_STORE_add_cert(store.get(), root.get());
  struct SkFree {
    void operator()(STACK_OF(X509) * s) const { sk_X509_free(s); }
  };
  std::unique_ptr<STACK_OF(X509), SkFree> untrusted(sk_X509_new_null());
  for (std::size_t i = 1; i < chain.size(); ++i) sk_X509_push(untrusted.get(), chain[i].get());
  OsslPtr<X509_STORE_CTX, X509_STORE_CTX_free> ctx(X509_STORE_CTX_new());
  X509_STORE_CTX_init(ctx.get(), store.get(), chain[0].get(), untrusted.get());
  bool ok = X509_verify_cert(ctx.get()) == 1;
  ERR_clear_error();
  return ok;
}

// A DER TimeStampReq for `imprint` (certReq true, a random nonce), and the nonce.
std::pair<Bytes, Bytes> timestamp_query(const Bytes& imprint, const EVP_MD* md) {
  OsslPtr<TS_REQ, TS_REQ_free> req(TS_REQ_new());
  OsslPtr<TS_MSG_IMPRINT, TS_MSG_IMPRINT_free> mi(TS_MSG_IMPRINT_new());
  OsslPtr<X509_ALGOR, X509_ALGOR_free> alg(X509_ALGOR_new());
  X509_ALGOR_set0(alg.get(), OBJ_nid2obj(EVP_MD_get_type(md)), V_ASN1_NULL, nullptr);
  TS_MSG_IMPRINT_set_algo(mi.get(), alg.get());
  TS_MSG_IMPRINT_set_msg(mi.get(), const_cast<unsigned char*>(imprint.data()),
                         static_cast<int>(imprint.size()));
  TS_REQ_set_version(req.get(), 1);
  TS_REQ_set_msg_imprint(req.get(), mi.get());
  Bytes nonce = random_bytes(8);
  nonce[0] &= 0x7f;
  OsslPtr<BIGNUM, BN_free> bn(BN_bin2bn(nonce.data(), static_cast<int>(nonce.size()), nullptr));
  OsslPtr<ASN1_INTEGER, ASN1_INTEGER_free> n(BN_to_ASN1_INTEGER(bn.get(), nullptr));
  TS_REQ_set_nonce(req.get(), n.get());
  TS_REQ_set_cert_req(req.get(), 1);
  int len = i2d_TS_REQ(req.get(), nullptr);
  Bytes der(static_cast<std::size_t>(len));
  unsigned char* p = der.data();
  i2d_TS_REQ(req.get(), &p);
  return {der, nonce};
}

// TS_RESP_verify_response against STATE/tsa-root.pem: status granted, signature, chain,
// imprint and nonce.
bool timestamp_verifies(const Endpoints& ep, const Bytes& query, const std::string& reply) {
  const unsigned char* q = query.data();
  OsslPtr<TS_REQ, TS_REQ_free> req(d2i_TS_REQ(nullptr, &q, static_cast<long>(query.size())));
  const unsigned char* r = reinterpret_cast<const unsigned char*>(reply.data());
  OsslPtr<TS_RESP, TS_RESP_free> resp(d2i_TS_RESP(nullptr, &r, static_cast<long>(reply.size())));
  if (!req || !resp) return false;
  TS_VERIFY_CTX* ctx = TS_REQ_to_TS_VERIFY_CTX(req.get(), nullptr);
  X509_STORE* store = X509_STORE_new();
  X509Ptr root = load_pem_cert(ep.state_dir / "tsa-root.pem");
  X509_STORE_add_cert(store, root.get());
  TS_VERIFY_CTX_set_store(ctx, store);  // the context owns it from here
  bool ok = TS_RESP_verify_response(ctx, resp.get()) == 1;
  TS_VERIFY_CTX_free(ctx);
  ERR_clear_error();
  return ok;
}

std::vector<json::object> log_lines(const Endpoints& ep) {
  std::vector<json::object> out;
  std::istringstream in(read_file(ep.state_dir / "requests.log"));
  std::string line;
  while (std::getline(in, line)) out.push_back(json::parse(line).as_object());
  return out;
}

}  // namespace

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
      CHECK(X509_get_ext_d2i(chain[0].get(), NID_basic_constraints, nullptr, nullptr) != nullptr);
    }
  }
}

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

namespace {

// A state directory of its own (for a request log of its own), with the shared keys copied in
// so that none is generated again.
Options fresh_state(const std::string& name) {
  { Running warm(base_options()); }  // makes sure the shared keys exist
  Options o = base_options();
  o.state_dir = shared_state_dir() / name;
  fs::remove_all(o.state_dir);
  fs::create_directories(o.state_dir);
  for (const auto& e : fs::directory_iterator(shared_state_dir()))
    if (e.is_regular_file() && (e.path().extension() == ".key" || e.path().extension() == ".pem"))
      fs::copy_file(e.path(), o.state_dir / e.path().filename());
  return o;
}

Reply post_sign(const Endpoints& ep, const std::string& token, const std::string& route,
                const std::string& api, const Bytes& digest) {
  json::object body{{"signatureAlgorithm", "RS256"}, {"digest", base64_encode(digest)}};
  return must(fetch(ep, {.method = http::verb::post,
                         .target = profile_path(ep) + route + "?api-version=" + api,
                         .headers = {{"Authorization", "Bearer " + token}},
                         .body = json::serialize(body),
                         .content_type = "application/json"}));
}

}  // namespace

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

TEST_CASE("options") {
  auto parse = [](std::vector<std::string> a) { return parse_options(a); };
  Options o = parse({"--listen", "127.0.0.1:8443", "--state-dir", "/tmp/x", "--throttle-every=3",
                     "--forbid", "--latency-ms", "20", "--account", "acc"});
  CHECK(o.listen_port == 8443);
  CHECK(o.throttle_every == 3);
  CHECK(parse({"--capacity=4"}).capacity == 4);
  CHECK(parse({"--malformed-polls-every", "3"}).malformed_polls_every == 3);
  CHECK(parse({"--drop-polls-every=5"}).drop_polls_every == 5);
  CHECK(o.forbid);
  CHECK(o.latency == std::chrono::milliseconds(20));
  CHECK(o.account == "acc");
  CHECK(o.polls_before_success == 1);
  CHECK_THROWS_AS(parse({"--listen", "0.0.0.0:1"}), InputError);
  CHECK_THROWS_AS(parse({"--listen", "127.0.0.1:99999"}), InputError);
  CHECK_THROWS_AS(parse({"--fail-every", "-1"}), InputError);
  CHECK_THROWS_AS(parse({"--fail-every"}), InputError);
  CHECK_THROWS_AS(parse({"--bogus"}), InputError);
  CHECK_THROWS_AS(parse({"--forbid=yes"}), InputError);
  CHECK_THROWS_AS(parse({"--account", "a/b"}), InputError);
  CHECK(emulator::main(std::vector<std::string>{"--bogus"}) == 2);

  CHECK(o.api_versions ==
        std::vector<std::string>{"2024-06-15", "2022-06-15-preview", "2023-06-15-preview"});
  CHECK(o.unsupported_version_status == 400);
  Options v = parse(
      {"--api-versions", "2022-06-15-preview,2024-06-15", "--unsupported-version-status=401"});
  CHECK(v.api_versions == std::vector<std::string>{"2022-06-15-preview", "2024-06-15"});
  CHECK(v.unsupported_version_status == 401);
  CHECK_THROWS_AS(parse({"--api-versions", "2024-06-15,"}), InputError);
  CHECK_THROWS_AS(parse({"--api-versions", "2025-01-01"}), InputError);
  CHECK_THROWS_AS(parse({"--unsupported-version-status", "403"}), InputError);
}

TEST_CASE("`tsign emulator` prints its environment, then the ready line, and stops at stdin EOF") {
  fs::path binary = TSIGN_BINARY;
  if (binary.empty() || !fs::exists(binary)) {
    WARN("tsign binary not built; skipped");
    return;
  }
  { Running warm(base_options()); }  // keys exist: the command starts quickly
  fs::path out = shared_state_dir() / "stdout.txt";
#ifdef _WIN32
  const char* null_in = "NUL";
#else
  const char* null_in = "/dev/null";
#endif
  // stdin is empty: the emulator must print everything, then see EOF and exit 0.
  std::string cmd = "\"" + binary.string() + "\" emulator --exit-on-stdin-eof --state-dir \"" +
                    shared_state_dir().string() + "\" --account acc1 < " + null_in + " > \"" +
                    out.string() + "\"";
  int rc = std::system(cmd.c_str());
  CHECK(rc == 0);
  std::string text = read_file(out);
  CHECK(text.find("export ACTIONS_ID_TOKEN_REQUEST_URL='https://127.0.0.1:") != std::string::npos);
  CHECK(text.find("export TSIGN_EMULATOR_ACCOUNT='acc1'") != std::string::npos);
  CHECK(text.find("export TSIGN_ALLOWED_HOSTS='127.0.0.1,localhost'") != std::string::npos);
  CHECK(text.find("AZURE_CLIENT_SECRET") == std::string::npos);
  CHECK(text.ends_with("# tsign emulator ready\n"));
}
