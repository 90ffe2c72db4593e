// The emulator tests' shared client and checks (see client.hpp).
#include "client.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/ts.h>
#include <openssl/x509v3.h>

#include "common/digest.hpp"
#include "common/text.hpp"

namespace emu_test {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace json = boost::json;
namespace fs = std::filesystem;
using tcp = net::ip::tcp;
using namespace tsign;

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

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

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
    name = ascii_lower(name);
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
            const std::string& tenant) {
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

}  // namespace emu_test
