// The signing pipeline: per file, open -> digest -> signed attributes -> Signer -> check ->
// time-stamp -> write beside + verify + rename. Files run concurrently (bounded), hashing and
// writing on two small thread pools (one for large files, so that they never hold up the small
// ones), network on one io_context thread. One run, one deadline.
#pragma once

#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/any_io_executor.hpp>

#include "authenticode/authenticode.hpp"
#include "common/digest.hpp"
#include "common/error.hpp"
#include "common/log.hpp"
#include "engine/select.hpp"
#include "http/client.hpp"
#include "signer/signer.hpp"

namespace tsign::engine {

struct Settings {
  authenticode::SignOptions sign;  // file digest, description, URL
  // Time-stamp authorities, tried in order for each file; empty: no time-stamp.
  std::vector<std::string> timestamp_urls;
  DigestAlg timestamp_digest = DigestAlg::sha256;
  bool append = false;
  bool skip_signed = false;
  bool dry_run = false;
  std::chrono::seconds timeout{300};
  // When the run's clock started (before file selection, which counts against `timeout`).
  // Unset: when run() is called.
  std::optional<std::chrono::steady_clock::time_point> started;
  int concurrency = 0;  // 0: the signer's preference (see SignerHandle)
  // At most this many signatures are requested in the run (max-signatures); 0: no limit.
  std::size_t max_signatures = 0;
  // Roots for skip-signed's "already carries a valid signature". Null: the platform's.
  X509_STORE* skip_signed_roots = nullptr;
  // Each file's whole SHA-256 before and after (FileResult::sha256_before/after), for the JSON
  // report and the action's subject-checksums. Off, a large file is read once rather than two
  // or three times (`tsign sign` without --report).
  bool file_hashes = true;
};

enum class Status { signed_ok, failed, skipped, planned };
std::string_view status_name(Status s);  // "signed" / "failed" / "skipped" / "planned"

struct FileResult {
  std::filesystem::path path;    // the name given
  std::filesystem::path target;  // the file signed: `path`, or the file a symbolic link reaches
  std::vector<std::filesystem::path> aliases;  // other names given that reach the same target
  std::string format;                          // "pe", or "" when not recognised
  Status status = Status::failed;
  std::uint64_t bytes = 0;
  std::string sha256_before, sha256_after;  // empty unless Settings::file_hashes
  double seconds = 0;
  std::string error;  // empty unless failed (or the reason for a skip); does not repeat the path
};

struct RunResult {
  std::vector<FileResult> files;
  bool deadline_passed = false;
  // SIGINT/SIGTERM stopped the run (0: not interrupted): files in flight were finished, no new
  // one started; exit 128 + N.
  int interrupted_signal = 0;
  // A failure of the whole run (401/403, bad account): every file not signed says why.
  std::optional<ExitCode> fatal_code;
  std::string fatal_message;
  std::optional<authenticode::SignatureReport> certificate;  // the signing leaf, once known
  double seconds = 0;
  int concurrency = 0;                   // files in flight at once, at most
  std::size_t throttled = 0;             // 429/503 answers from the services
  std::size_t lowest_concurrency = 0;    // requests in flight per host after throttling (0: never)
  std::size_t signatures_requested = 0;  // signatures asked of the signer (each one paid for)
  std::size_t max_signatures = 0;        // the run's budget (Settings::max_signatures; 0: none)
  bool budget_reached = false;           // a file went unsigned because of max-signatures

  std::size_t count(Status s) const;
  // The most severe that applies (docs/usage.md "Exit codes"): 2, 3, then 128+N, 4, 5, 1.
  ExitCode exit_code() const;
};

// What a signer needs from the run: its executor and the shared HTTP client.
struct Services {
  boost::asio::any_io_executor executor;
  http::Client& http;
  Log& log;
};

struct SignerHandle {
  std::unique_ptr<signer::Signer> signer;
  // Files in flight at once unless `concurrency` says otherwise; 0: CPU-bound signer, four per
  // hashing thread (one hashed or signed while the others are written).
  int preferred_concurrency = 8;
  // A CPU-bound signer (a local key) computes inside sign() without waiting on anything: the
  // engine calls it on the hashing pool, several files at once, so signing uses every core
  // instead of the one thread that runs the HTTP layer. Such a signer's sign() must be safe to
  // call concurrently.
  bool cpu_bound() const { return preferred_concurrency == 0; }
  // Keeps alive whatever the signer refers to (credential chain, ...).
  std::shared_ptr<void> keep_alive;
};
using SignerFactory = std::function<SignerHandle(Services&)>;

// Called from the run's thread when a file is done (for progress lines).
using OnFileDone = std::function<void(const FileResult&, std::size_t done, std::size_t total)>;

// Signs the selection's files; its skipped names are listed in the result as skipped (and
// reported through on_done first).
RunResult run(const Selection& selection, const Settings& settings,
              const SignerFactory& make_signer, Log& log, const OnFileDone& on_done = {});
// The same for plain paths (no links resolved, nothing skipped).
RunResult run(const std::vector<std::filesystem::path>& files, const Settings& settings,
              const SignerFactory& make_signer, Log& log, const OnFileDone& on_done = {});

// "SIGINT", "SIGTERM", or "signal N".
std::string signal_name(int signo);

}  // namespace tsign::engine
