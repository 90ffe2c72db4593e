// The engine in-process (engine/engine.cpp), driven by a fake signer on copies of the generated PE
// fixtures: the concurrency bound, the deadline, a 401 that stops the run, Ctrl-C once and twice
// (docs/usage.md "Exit codes"). What users care about is asserted: the exit code, which files are
// signed (and verify with osslsigncode), and that every other file is byte-identical with nothing
// left beside it.
#include <catch2/catch.hpp>

#include <algorithm>
#include <csignal>
#include <string>
#include <vector>

#ifndef _WIN32
#include <sys/wait.h>
#include <unistd.h>
#endif

#include "common/error.hpp"
#include "common/log.hpp"
#include "engine/engine.hpp"
#include "fake_signer.hpp"
#include "support/fixtures.hpp"

using namespace tsign;
using namespace tsign::test;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using engine::Status;

namespace {

// `n` copies of pe64.exe in `d` (a.exe, b.exe, ...), with their bytes.
struct Files {
  std::vector<fs::path> paths;
  std::vector<Bytes> before;
};
Files copies(const TempDir& d, int n) {
  Files f;
  for (int i = 0; i < n; ++i) {
    auto p = d.path() / (std::string(1, static_cast<char>('a' + i)) + ".exe");
    fs::copy_file(fixture("pe64.exe"), p);
    f.paths.push_back(p);
    f.before.push_back(read_all(p));
  }
  return f;
}

bool verifies(const fs::path& p) {
  auto r =
      run_command("osslsigncode verify -CAfile " + quote(fixture("root.pem")) + " -in " + quote(p));
  INFO(r.output);
  return r.exit_code == 0;
}

// The names in `d`: no temporary copy may stay beside a file.
std::vector<std::string> listing(const fs::path& d) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(d)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}
std::vector<std::string> names_of(const Files& f) {
  std::vector<std::string> names;
  for (const auto& p : f.paths) names.push_back(p.filename().string());
  return names;
}

// Every file is either signed (and verifies) or byte-identical; returns how many were signed.
int signed_or_untouched(const engine::RunResult& r, const Files& f) {
  int n = 0;
  for (std::size_t i = 0; i < f.paths.size(); ++i) {
    auto row = std::find_if(r.files.begin(), r.files.end(),
                            [&](const engine::FileResult& x) { return x.path == f.paths[i]; });
    REQUIRE(row != r.files.end());
    INFO(f.paths[i] << ": " << engine::status_name(row->status) << " " << row->error);
    if (row->status == Status::signed_ok) {
      CHECK(verifies(f.paths[i]));
      ++n;
    } else {
      CHECK(row->status == Status::failed);
      CHECK(read_all(f.paths[i]) == f.before[i]);
    }
  }
  return n;
}

// No time-stamp (the signer is the subject here), a minute to spare.
engine::Settings settings() {
  engine::Settings st;
  st.timeout = std::chrono::seconds(60);
  return st;
}

// A Log that opens a gate when the run says it was interrupted (the signal was handled).
struct InterruptLog : NullLog {
  Gate* seen = nullptr;
  void warning(const std::string& m) override {
    if (m.find("interrupted by") != std::string::npos && seen) seen->open();
  }
};

}  // namespace

TEST_CASE("never more than N signatures in flight, and N are reached", "[engine][concurrency]") {
  TempDir d("engine");
  auto state = std::make_shared<FakeSignerState>();
  Gate batch;
  int bound = 0;
  // Each call waits until `bound` calls are in flight; the last to arrive holds them all a moment
  // longer, so that a file the engine started beyond the bound would be seen in flight too.
  state->behaviour = [&](int) -> asio::awaitable<void> {
    if (state->in_flight < bound) {
      co_await batch.wait();
      co_return;
    }
    co_await wait_for(std::chrono::milliseconds(50));
    batch.release();
  };
  NullLog log;

  SECTION("the concurrency setting") {
    bound = 3;
    auto files = copies(d, 6);
    auto st = settings();
    st.concurrency = 3;
    auto r = engine::run(files.paths, st, fake_signer(state), log);
    CHECK(r.exit_code() == ExitCode::ok);
    CHECK(state->most_in_flight == 3);
    CHECK(r.concurrency == 3);
    CHECK(state->calls == 6);
    CHECK(signed_or_untouched(r, files) == 6);
  }
  SECTION("the signer's preference when the setting is 0") {
    bound = 2;
    auto files = copies(d, 4);
    auto r = engine::run(files.paths, settings(), fake_signer(state, 2), log);
    CHECK(r.exit_code() == ExitCode::ok);
    CHECK(state->most_in_flight == 2);
    CHECK(r.concurrency == 2);
    CHECK(signed_or_untouched(r, files) == 4);
  }
  CHECK(batch.gave_up == 0);
}

TEST_CASE("a nesting the file cannot hold is refused before a signature is requested",
          "[engine][paid]") {
  // An MSI with MsiDigitalSignatureEx carries the pre-hash of one digest algorithm: a SHA-512
  // signature nested into its SHA-256 one would break the primary. Nothing is paid for that.
  TempDir d("engine");
  const auto msi = d.path() / "setup.msi";
  fs::copy_file(fixture("msi-dse.msi"), msi);
  const auto before = read_all(msi);
  auto st = settings();
  st.append = true;
  st.sign.alg = DigestAlg::sha512;
  auto state = std::make_shared<FakeSignerState>();
  NullLog log;
  auto r = engine::run(std::vector<fs::path>{msi}, st, fake_signer(state), log);
  REQUIRE(r.files.size() == 1);
  CHECK(r.files[0].status == Status::failed);
  CHECK(r.files[0].error.find("MsiDigitalSignatureEx") != std::string::npos);
  CHECK(state->calls == 0);
  CHECK(read_all(msi) == before);
}

TEST_CASE("max-signatures: no more signatures than the budget, exit 5, the rest untouched",
          "[engine][paid][budget]") {
  TempDir d("engine");
  auto files = copies(d, 7);
  auto st = settings();
  st.concurrency = 4;  // more files in flight than the budget leaves room for
  st.max_signatures = 3;
  auto state = std::make_shared<FakeSignerState>();
  NullLog log;
  auto r = engine::run(files.paths, st, fake_signer(state), log);
  CHECK(state->calls == 3);
  CHECK(r.signatures_requested == 3);
  CHECK(r.budget_reached);
  CHECK(r.exit_code() == ExitCode::budget);
  CHECK(static_cast<int>(ExitCode::budget) == 5);
  CHECK(signed_or_untouched(r, files) == 3);
  for (const auto& f : r.files)
    if (f.status == Status::failed) CHECK(f.error.find("max-signatures (3)") != std::string::npos);
  CHECK(listing(d.path()) == names_of(files));

  SECTION("a budget the run stays within changes nothing") {
    TempDir d2("engine");
    auto more = copies(d2, 3);
    state->calls = 0;
    auto r2 = engine::run(more.paths, st, fake_signer(state), log);
    CHECK(r2.exit_code() == ExitCode::ok);
    CHECK(r2.signatures_requested == 3);
    CHECK_FALSE(r2.budget_reached);
  }
}

TEST_CASE("a run past its deadline: exit 4, the file in flight and those not started untouched",
          "[engine][deadline]") {
  TempDir d("engine");
  auto files = copies(d, 4);
  auto st = settings();
  st.concurrency = 1;
  st.timeout = std::chrono::seconds(5);  // room for the first file on a loaded CI machine
  st.started = Clock::now();
  const auto deadline = *st.started + st.timeout;
  auto state = std::make_shared<FakeSignerState>();
  // The first file is signed at once; the service then takes 30 s, and the signer gives up at the
  // run's deadline as the real one does (its HTTP client carries the deadline).
  state->behaviour = [&](int n) -> asio::awaitable<void> {
    if (n == 1) co_return;
    co_await wait_for(std::min<Clock::duration>(std::chrono::seconds(30), deadline - Clock::now()));
    if (Clock::now() >= deadline)
      throw DeadlineError("the run's deadline passed while waiting for the signing service");
  };
  NullLog log;
  auto t0 = Clock::now();
  auto r = engine::run(files.paths, st, fake_signer(state), log);
  CHECK(Clock::now() - t0 < std::chrono::seconds(20));  // the 30 s answer was not waited for
  CHECK(r.exit_code() == ExitCode::deadline);
  CHECK(r.deadline_passed);
  CHECK(state->calls == 2);  // nothing is asked of the service once the deadline has passed
  CHECK(signed_or_untouched(r, files) == 1);
  CHECK(r.count(Status::failed) == 3);
  for (const auto& f : r.files)
    if (f.status == Status::failed) CHECK(f.error.find("deadline") != std::string::npos);
  CHECK(listing(d.path()) == names_of(files));
}

TEST_CASE("a 401 stops the run: no further signing request, exit 3, the rest untouched",
          "[engine][auth]") {
  TempDir d("engine");
  auto files = copies(d, 6);
  auto st = settings();
  st.concurrency = 2;
  auto state = std::make_shared<FakeSignerState>();
  Gate refused;
  // Call 1 is in flight when call 2 is refused, and finishes after it: a file in flight is
  // finished, none is started.
  state->behaviour = [&](int n) -> asio::awaitable<void> {
    if (n == 1) {
      co_await refused.wait();
      co_return;
    }
    refused.open();
    throw AuthError("the signing service answered 401 Unauthorized");
  };
  NullLog log;
  auto r = engine::run(files.paths, st, fake_signer(state), log);
  CHECK(refused.gave_up == 0);
  CHECK(r.exit_code() == ExitCode::auth);
  CHECK(r.fatal_code == ExitCode::auth);
  CHECK(r.fatal_message.find("401") != std::string::npos);
  CHECK(state->calls == 2);
  CHECK(signed_or_untouched(r, files) == 1);
  CHECK(r.count(Status::failed) == 5);
  CHECK(listing(d.path()) == names_of(files));
}

TEST_CASE("Ctrl-C once: the files in flight are finished, none is started, exit 130",
          "[engine][interrupt]") {
  TempDir d("engine");
  auto files = copies(d, 5);
  auto st = settings();
  st.concurrency = 2;
  auto state = std::make_shared<FakeSignerState>();
  Gate handled;
  InterruptLog log;
  log.seen = &handled;
  // Both calls are in flight when call 2 raises SIGINT; both go on once the run has handled it.
  state->behaviour = [&](int n) -> asio::awaitable<void> {
    if (n == 2) std::raise(SIGINT);
    co_await handled.wait();
  };
  auto r = engine::run(files.paths, st, fake_signer(state), log);
  CHECK(handled.gave_up == 0);
  CHECK(r.interrupted_signal == SIGINT);
  CHECK(r.exit_code() == ExitCode::interrupted_sigint);
  CHECK(static_cast<int>(r.exit_code()) == 128 + 2);
  CHECK(state->calls == 2);
  CHECK(signed_or_untouched(r, files) == 2);
  for (const auto& f : r.files)
    if (f.status == Status::failed) {
      CHECK(f.error.find("interrupted by SIGINT") != std::string::npos);
      CHECK(f.error.find("unchanged") != std::string::npos);
    }
  CHECK(listing(d.path()) == names_of(files));
}

#ifndef _WIN32
// The second signal ends the process at once (std::_Exit), so the run is made in a child process
// of the test: its exit status is what a shell sees.
TEST_CASE("Ctrl-C twice: the process ends at once with 130, originals intact, nothing beside them",
          "[engine][interrupt]") {
  TempDir d("engine");
  auto files = copies(d, 3);
  fixtures_dir();  // made before the fork, not by the child
  auto t0 = Clock::now();
  const pid_t child = fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    alarm(60);      // a watchdog: a child that hangs dies of SIGALRM, and the test fails
    int code = 99;  // the run returned: the second signal did not end it
    try {
      auto st = settings();
      st.concurrency = 1;
      auto state = std::make_shared<FakeSignerState>();
      // File 1 is signed; during file 2 the user presses Ctrl-C twice, and the service would take
      // 30 s more.
      state->behaviour = [&](int n) -> asio::awaitable<void> {
        if (n == 1) co_return;
        std::raise(SIGINT);
        std::raise(SIGINT);
        co_await wait_for(std::chrono::seconds(30));
      };
      NullLog log;
      engine::run(files.paths, st, fake_signer(state), log);
    } catch (...) {
      code = 98;
    }
    _exit(code);
  }
  int status = 0;
  REQUIRE(waitpid(child, &status, 0) == child);
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 130);
  CHECK(Clock::now() - t0 < std::chrono::seconds(20));
  CHECK(verifies(files.paths[0]));
  CHECK(read_all(files.paths[1]) == files.before[1]);
  CHECK(read_all(files.paths[2]) == files.before[2]);
  CHECK(listing(d.path()) == names_of(files));
}
#endif
