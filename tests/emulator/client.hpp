// What the emulator tests share (tests/emulator/*_test.cpp): an emulator running in-process on a
// thread, a small synchronous Beast client that verifies the emulator's TLS certificate against
// STATE/tls-ca.pem as a real client would, the credential steps a client takes, and checks of
// what comes back (signatures, chains, time-stamps, the request log).
#pragma once

#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <boost/beast/http/verb.hpp>
#include <boost/json.hpp>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "common/bytes.hpp"
#include "common/ossl.hpp"
#include "emulator/emulator.hpp"

namespace emu_test {

using tsign::Bytes;
using tsign::X509Ptr;
using tsign::emulator::Endpoints;
using tsign::emulator::Options;
using tsign::emulator::Server;

inline constexpr auto kApi = "?api-version=2022-06-15-preview";

// Keys are generated once per test run and reused by every emulator started on this directory
// (that reuse is itself under test), which keeps the suite fast.
std::filesystem::path shared_state_dir();
Options base_options();
// A state directory of its own (for a request log of its own), with the shared keys copied in
// so that none is generated again.
Options fresh_state(const std::string& name);

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

std::string read_file(const std::filesystem::path& p);

struct Reply {
  unsigned status = 0;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
  boost::json::object json() const {
    auto v = boost::json::parse(body);
    return v.as_object();
  }
};

struct Call {
  boost::beast::http::verb method = boost::beast::http::verb::get;
  std::string target;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  std::string content_type;
  bool tsa = false;  // the plain-HTTP time-stamp port
};

// One request on a fresh connection; nullopt when the server closes it without answering.
std::optional<Reply> fetch(const Endpoints& ep, const Call& c);
// The reply, REQUIRE-d to be there.
Reply must(const std::optional<Reply>& r);
std::string form_escape(const std::string& s);

Reply github_token(const Endpoints& ep, const std::string& request_token);
Reply entra(const Endpoints& ep, const std::vector<std::pair<std::string, std::string>>& fields,
            const std::string& tenant = {});
std::vector<std::pair<std::string, std::string>> assertion_form(const Endpoints& ep,
                                                                const std::string& assertion);
// The default credential path: GitHub OIDC token -> federated Entra token.
std::string access_token(const Endpoints& ep);

std::string profile_path(const Endpoints& ep);
Reply sign_request(const Endpoints& ep, const std::string& token, const std::string& alg,
                   const Bytes& digest);
Reply poll_request(const Endpoints& ep, const std::string& token, const std::string& id);
// Polls until the operation leaves InProgress; returns the final answer's JSON and how many
// InProgress answers came first.
std::pair<boost::json::object, int> poll_until_done(const Endpoints& ep, const std::string& token,
                                                    const std::string& id);
// An RS256 sign request on `route` (":sign" or "/sign") with `api`.
Reply post_sign(const Endpoints& ep, const std::string& token, const std::string& route,
                const std::string& api, const Bytes& digest);

std::vector<X509Ptr> decode_chain(const std::string& signing_certificate);
std::vector<std::string> ekus_of(X509* cert);
X509Ptr load_pem_cert(const std::filesystem::path& p);
bool verify_digest_signature(X509* leaf, const Bytes& digest, const Bytes& sig, const EVP_MD* md);
// Verifies the chain leaf <- intermediate <- STATE/codesign-root.pem.
bool chain_verifies(const std::vector<X509Ptr>& chain, const std::filesystem::path& root_pem);

// A DER TimeStampReq for `imprint` (certReq true, a random nonce), and the nonce.
std::pair<Bytes, Bytes> timestamp_query(const Bytes& imprint, const EVP_MD* md);
// TS_RESP_verify_response against STATE/tsa-root.pem: status granted, signature, chain,
// imprint and nonce.
bool timestamp_verifies(const Endpoints& ep, const Bytes& query, const std::string& reply);

std::vector<boost::json::object> log_lines(const Endpoints& ep);

}  // namespace emu_test
