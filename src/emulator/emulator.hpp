// `tsign emulator`: a local, self-contained stand-in for the cloud a signing run talks to
// (GitHub OIDC, Microsoft Entra ID, Trusted Signing, an RFC 3161 TSA), with fault injection.
// The wire formats are those of docs/protocol.md; docs/interface.md ("The emulator") is the
// contract.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace tsign::emulator {

struct Options {
  std::string listen_host = "127.0.0.1";
  std::uint16_t listen_port = 0;    // 0: a free port
  std::uint16_t tsa_port = 0;       // plain HTTP, same host; 0: a free port
  std::filesystem::path state_dir;  // empty: a new temporary directory
  std::string account = "emu-account";
  std::string profile = "emu-profile";
  // The GitHub subject the federated credential trusts (the Entra side checks it).
  std::string subject = "repo:tsign-emulator/demo:ref:refs/heads/main";
  int polls_before_success = 1;  // InProgress answers before Succeeded: exercises polling
  int poll_retry_after = 0;      // Retry-After (seconds) on 202 and InProgress answers
  std::chrono::seconds github_token_lifetime{300};
  std::chrono::seconds access_token_lifetime{3600};

  // Fault injection. Every "every N" counts the requests of its kind: sign + poll requests of
  // Trusted Signing for throttle/fail/drop/malformed, time-stamp requests for tsa_fail.
  std::chrono::milliseconds latency{0};
  int throttle_every = 0;  // 429 with Retry-After: 1
  // At most this many sign/poll requests served at once (a request is "served" until its
  // latency has passed); one more is answered 429 with Retry-After: 1, as a service at capacity.
  int capacity = 0;
  int fail_every = 0;       // 503 with Retry-After: 1
  int drop_every = 0;       // connection closed without an answer
  int malformed_every = 0;  // 200/202 with a truncated JSON body
  // The same two faults for status polls only, counting poll requests: a poll is idempotent, so
  // a client may ask again (a sign request it may not).
  int drop_polls_every = 0;
  int malformed_polls_every = 0;
  int tsa_fail_every = 0;          // 503 from the TSA
  bool bad_signature = false;      // signature over a different digest
  bool chain_without_eku = false;  // leaf lacks the codeSigning EKU
  bool forbid = false;             // 403 with an empty body for sign

  // The data-plane api-versions served (docs/usage.md "Service API versions"): 2024-06-15 (GA, the
  // `{profile}:sign` route), 2022-06-15-preview (the `/sign` route) and 2023-06-15-preview
  // (either route, wrapped answers). A request with any other api-version is refused with
  // `unsupported_version_status`: 400 with an Azure Core UnsupportedApiVersion error, or a bare
  // 401 or 404, the three ways field reports saw the service refuse a version.
  std::vector<std::string> api_versions = {"2024-06-15", "2022-06-15-preview",
                                           "2023-06-15-preview"};
  int unsupported_version_status = 400;

  bool exit_on_stdin_eof = false;
  bool handle_signals = false;  // SIGINT/SIGTERM stop run(); main() sets it
  bool help = false;
};

// Parses `--name value` / `--name=value`; throws InputError naming the option.
Options parse_options(std::span<const std::string> args);
std::string usage();

// What a client needs to reach a running emulator.
struct Endpoints {
  std::uint16_t https_port = 0;
  std::uint16_t tsa_port = 0;
  std::string base_url;  // https://127.0.0.1:PORT/ (Trusted Signing endpoint and Entra authority)
  std::string tsa_url;   // http://127.0.0.1:TSAPORT/
  std::filesystem::path state_dir;
  std::string tenant_id;
  std::string client_id;
  std::string account;
  std::string profile;
  // Shell lines (`export NAME='value'`) pointing tsign at the emulator; also in STATE/env.
  std::vector<std::string> env_lines;
  // Written to STATE/client-secret and STATE/id-token-request-token (owner-only files); kept
  // here so in-process tests need not read them back.
  std::string client_secret;
  std::string id_token_request_token;
  // Opens STATE/client-cert.pfx (new on every start, like the client secret).
  std::string client_certificate_password;
};

class Server {
 public:
  // Loads or creates the PKI in the state directory and binds both ports: once constructed,
  // endpoints() is final and clients may connect (they are served once run() is called).
  // Throws InputError (bad options, port in use) or FileError (state directory).
  explicit Server(Options opts);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  const Endpoints& endpoints() const;
  // Serves on the calling thread until stop() (or a signal, if handle_signals).
  void run();
  // Thread-safe; may be called before, during or after run().
  void stop();
  // A stop function that stays safe to call after the Server is gone (for a thread watching
  // stdin that may outlive it).
  std::function<void()> stopper() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// `tsign emulator ARGS...`: prints the environment lines, then `# tsign emulator ready`, and
// serves until SIGINT/SIGTERM or (with --exit-on-stdin-eof) until stdin closes.
int main(std::span<const std::string> args);

}  // namespace tsign::emulator
