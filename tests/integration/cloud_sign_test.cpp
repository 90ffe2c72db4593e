// The cloud path end to end through the real binary: GitHub OIDC -> Entra ID -> Trusted Signing
// sign/poll -> RFC 3161 time-stamp -> embed, all against `tsign emulator` on loopback, judged by
// osslsigncode. Each hostile answer of the issue is injected and its outcome asserted.
#include <catch2/catch.hpp>

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>

#include <chrono>
#include <fstream>
#include <future>
#include <mutex>
#include <thread>

#include <boost/json.hpp>

#include "emulator_process.hpp"

using namespace it;

namespace {

// A folder of samples: two 64-bit and two 32-bit PE files and one with an odd overlay.
std::vector<fs::path> samples(const TempDir& d, const std::string& sub = "bin") {
  std::vector<fs::path> v;
  for (auto n : {"pe64.exe", "pe64.dll", "pe32.exe", "pe32.dll", "pe64-overlay.exe"})
    v.push_back(d.copy(n, sub + "/" + n));
  return v;
}

std::vector<std::string> contents(const std::vector<fs::path>& files) {
  std::vector<std::string> v;
  for (auto& f : files) v.push_back(read_file(f));
  return v;
}

}  // namespace

TEST_CASE("cloud path: every file signed once, time-stamped and verified, with outputs and summary",
          "[integration][cloud]") {
  TempDir d;
  Emulator emu(emulator_state(d));
  auto files = samples(d);
  auto r = sh(emu.action_env(d.path / "bin",
                             "INPUT_FILES_FOLDER_FILTER=dll,exe INPUT_CORRELATION_ID=run-42") +
              "RUNNER_TEMP=" + d.q() + " GITHUB_OUTPUT=" + d.q("out") +
              " GITHUB_STEP_SUMMARY=" + d.q("summary.md") + " " + tsign_cmd() + " action");
  INFO(r.out);
  REQUIRE(r.code == 0);
  for (auto& f : files) {
    INFO(f);
    auto v = emu.verify(f);
    INFO(v.out);
    CHECK(v.code == 0);
    CHECK(v.out.find("Timestamp") != std::string::npos);
  }
  CHECK(emu.count("sign") == 5);  // exactly one paid signature per file
  CHECK(emu.count("tsa") == 5);
  CHECK(emu.count("entra") == 1);  // one token for the run
  auto out = read_file(d.path / "out");
  CHECK(out.find("signed-count=5") != std::string::npos);
  CHECK(out.find("failed-count=0") != std::string::npos);
  CHECK(out.find("signed-files<<") != std::string::npos);
  auto summary = read_file(d.path / "summary.md");
  CHECK(summary.find("5 signed, 0 failed") != std::string::npos);
  CHECK(summary.find("run-42") != std::string::npos);
  CHECK(summary.find("SHA-256 thumbprint") != std::string::npos);
  auto report = read_file(d.path / "tsign-report.json");
  CHECK(report.find("\"signed\":5") != std::string::npos);
  // subject-checksums: the signed files' SHA-256 as sha256sum writes them (what
  // actions/attest-build-provenance reads); sha256sum itself checks them against the files.
  auto at = out.find("subject-checksums=");
  REQUIRE(at != std::string::npos);
  std::string sums = out.substr(at + 18, out.find('\n', at) - at - 18);
  CHECK(sums == (d.path / "tsign-subject-checksums.txt").string());
  auto listed = read_file(sums);
  CHECK(std::count(listed.begin(), listed.end(), '\n') == 5);
  auto check = sh("sha256sum --strict -c " + quote(sums));
  INFO(check.out);
  CHECK(check.code == 0);
  CHECK(check.out.find(": OK") != std::string::npos);
  // No secret in the log: the GitHub request token and every JWT appear only on the
  // ::add-mask:: lines that tell the runner to hide them.
  std::istringstream lines(r.out);
  std::string line;
  int masks = 0;
  while (std::getline(lines, line)) {
    if (line.rfind("::add-mask::", 0) == 0) {
      ++masks;
      continue;
    }
    CHECK(line.find(emu.var("ACTIONS_ID_TOKEN_REQUEST_TOKEN")) == std::string::npos);
    CHECK(line.find("eyJ") == std::string::npos);
  }
  CHECK(masks >= 2);
  CHECK(emu.request_log().find("eyJ") == std::string::npos);
}

TEST_CASE("cloud path survives throttling, 503s and dropped connections",
          "[integration][cloud][faults]") {
  TempDir d;
  // Connections are dropped on polls only: a sign request whose connection closes after it was
  // sent is, rightly, not sent again (the service may have accepted it; see the test below).
  Emulator emu(emulator_state(d),
               {"--throttle-every", "3", "--fail-every", "5", "--drop-polls-every", "3"});
  auto files = samples(d);
  // One file at a time makes the faults hit consecutive requests deterministically: of any six
  // consecutive attempts of one request at most four fail (503 or dropped), so every request
  // succeeds within the retry policy's six attempts. (Concurrent files could line up six faults
  // for one request, a 429 storm that rightly fails the file.)
  auto r = sh(emu.action_env(d.path / "bin", "RUNNER_DEBUG=1 INPUT_CONCURRENCY=1") + tsign_cmd() +
              " action");
  INFO(r.out);
  REQUIRE(r.code == 0);
  for (auto& f : files) CHECK(emu.verify(f).code == 0);
  CHECK(emu.request_log().find("\"status\":429") != std::string::npos);
  CHECK(emu.request_log().find("\"status\":503") != std::string::npos);
  CHECK(emu.request_log().find("\"fault\":\"drop\"") != std::string::npos);
  CHECK(emu.signatures_issued() == 5);
}

TEST_CASE("a service at capacity: tsign paces itself, every file is signed, the summary says so",
          "[integration][cloud][faults]") {
  TempDir d;
  // Two signing requests served at once, each taking 200 ms; 16 files sent eight at a time.
  Emulator emu(emulator_state(d), {"--capacity", "2", "--latency-ms", "200"});
  std::vector<fs::path> files;
  for (int i = 0; i < 16; ++i)
    files.push_back(d.copy(i % 2 ? "pe64.dll" : "pe32.exe",
                           "bin/f" + std::to_string(i) + (i % 2 ? ".dll" : ".exe")));
  auto r = sh(emu.action_env(d.path / "bin", "INPUT_CONCURRENCY=8") + "RUNNER_TEMP=" + d.q() +
              " GITHUB_STEP_SUMMARY=" + d.q("summary.md") + " " + tsign_cmd() + " action");
  INFO(r.out);
  REQUIRE(r.code == 0);
  for (auto& f : files) CHECK(emu.verify(f).code == 0);
  CHECK(emu.request_log().find("\"capacity\"") != std::string::npos);
  CHECK(r.out.find("the service throttled") != std::string::npos);
  auto summary = read_file(d.path / "summary.md");
  CHECK(summary.find("| Concurrency | 8 files in flight; the service throttled") !=
        std::string::npos);
  auto report = boost::json::parse(read_file(d.path / "tsign-report.json")).as_object();
  auto& c = report.at("concurrency").as_object();
  CHECK(c.at("files_in_flight").as_int64() == 8);
  CHECK(c.at("throttled_answers").as_int64() > 0);
  CHECK(c.at("lowest_requests_in_flight").as_int64() <= 4);
}

TEST_CASE("hostile or refusing service: clear error, defined exit code, every file unchanged",
          "[integration][cloud][faults]") {
  struct Case {
    std::vector<std::string> faults;
    int code;
    std::string expect;
  };
  std::vector<Case> cases = {
      {{"--forbid"}, 3, "Signer"},
      {{"--bad-signature"}, 1, "does not verify"},
      {{"--chain-without-eku"}, 1, "codeSigning"},
      {{"--malformed-every", "1"}, 1, "malformed"},
      {{"--tsa-fail-every", "1"}, 1, "time-stamp"},
  };
  for (auto& c : cases) {
    TempDir d;
    Emulator emu(emulator_state(d), c.faults);
    auto files = samples(d);
    auto before = contents(files);
    auto r = sh(emu.action_env(d.path / "bin", "INPUT_TIMEOUT=60") + tsign_cmd() + " action");
    INFO(c.faults.front() << "\n" << r.out);
    CHECK(r.code == c.code);
    CHECK(r.out.find(c.expect) != std::string::npos);
    CHECK(contents(files) == before);
    CHECK(listing(d.path / "bin").size() == files.size());
  }
}

TEST_CASE("wrong account, foreign endpoint and untrusted TLS are refused before signing",
          "[integration][cloud][bad-input]") {
  TempDir d;
  Emulator emu(emulator_state(d));
  auto files = samples(d);
  auto before = contents(files);
  auto base = emu.action_env(d.path / "bin");

  auto wrong = sh(base + "INPUT_SIGNING_ACCOUNT_NAME=nope " + tsign_cmd() + " action");
  INFO(wrong.out);
  CHECK(wrong.code == 2);
  CHECK(wrong.out.find("nope") != std::string::npos);

  // A host outside *.codesigning.azure.net and TSIGN_ALLOWED_HOSTS: no token is even requested.
  int entra_before = emu.count("entra");
  auto foreign = sh(base + "INPUT_ENDPOINT=https://evil.example.com/ " + tsign_cmd() + " action");
  INFO(foreign.out);
  CHECK(foreign.code == 2);
  CHECK(foreign.out.find("evil.example.com") != std::string::npos);
  auto plain = sh(base + "INPUT_ENDPOINT=http://127.0.0.1:1/ " + tsign_cmd() + " action");
  CHECK(plain.code == 2);
  CHECK(emu.count("entra") == entra_before);

  // The emulator's CA is not trusted without SSL_CERT_FILE: no token can be had.
  auto untrusted = sh(base + "SSL_CERT_FILE=" + fx("root.pem") + " " + tsign_cmd() + " action");
  INFO(untrusted.out);
  CHECK(untrusted.code == 3);
  CHECK(untrusted.out.find("certificate") != std::string::npos);

  // An SSL_CERT_FILE that cannot be read is the user's input to fix (exit 2, named), found
  // before any signature is asked for (the roots are read at the first TLS connection).
  int signs_before = emu.count("sign");
  auto unreadable = sh(base + "SSL_CERT_FILE=" + (d.path / "no-such-bundle.pem").string() + " " +
                       tsign_cmd() + " action");
  INFO(unreadable.out);
  CHECK(unreadable.code == 2);
  CHECK(unreadable.out.find("SSL_CERT_FILE=" + (d.path / "no-such-bundle.pem").string() +
                            ": cannot load CA certificates") != std::string::npos);
  CHECK(emu.count("sign") == signs_before);

  CHECK(contents(files) == before);
}

TEST_CASE(
    "append-signature onto a signature that cannot take one is refused before a signature "
    "is bought",
    "[integration][cloud][bad-input]") {
  TempDir d;
  Emulator emu(emulator_state(d));
  auto f = d.copy("pe64-signed-leaf.exe", "bin/damaged.exe");
  std::string b = read_file(f);
  // A certificate's version, [0] { INTEGER 2 }, with the INTEGER's tag made an OCTET STRING: the
  // signature's outline is intact (the file opens), its content cannot be decoded.
  const auto at = b.find(std::string("\xa0\x03\x02\x01\x02", 5));
  REQUIRE(at != std::string::npos);
  b[at + 2] = '\x04';
  write_file(f, b);
  auto r =
      sh(emu.action_env(d.path / "bin", "INPUT_APPEND_SIGNATURE=true") + tsign_cmd() + " action");
  INFO(r.out);
  CHECK(r.code == 1);
  CHECK(r.out.find("damaged.exe::cannot append a signature: the existing signature") !=
        std::string::npos);
  CHECK(emu.count("sign") == 0);
  CHECK(read_file(f) == b);
}

TEST_CASE("the deadline stops a slow run: exit 4, every file signed or untouched",
          "[integration][cloud][deadline]") {
  TempDir d;
  Emulator emu(emulator_state(d), {"--latency-ms", "1500"});
  auto files = samples(d);
  auto before = contents(files);
  auto r = sh(emu.action_env(d.path / "bin", "INPUT_TIMEOUT=2") + tsign_cmd() + " action");
  INFO(r.out);
  CHECK(r.code == 4);
  CHECK(r.out.find("deadline") != std::string::npos);
  for (std::size_t i = 0; i < files.size(); ++i) {
    bool unchanged = read_file(files[i]) == before[i];
    CHECK((unchanged || emu.verify(files[i]).code == 0));
  }
  CHECK(listing(d.path / "bin").size() == files.size());
}

TEST_CASE("a token that expires mid-run is refreshed", "[integration][cloud]") {
  TempDir d;
  Emulator emu(emulator_state(d), {"--access-token-lifetime", "2", "--latency-ms", "300"});
  auto files = samples(d);
  auto r = sh(emu.action_env(d.path / "bin", "INPUT_CONCURRENCY=1") + tsign_cmd() + " action");
  INFO(r.out);
  REQUIRE(r.code == 0);
  CHECK(emu.count("entra") >= 2);
  CHECK(emu.count("oidc") == emu.count("entra"));  // a fresh GitHub token for every Entra request
  for (auto& f : files) CHECK(emu.verify(f).code == 0);
}

TEST_CASE("Ctrl-C: the file in flight is finished, none is started, exit 130, said as interrupted",
          "[integration][cloud][signal]") {
  TempDir d;
  Emulator emu(emulator_state(d), {"--latency-ms", "300", "--polls-before-success", "2"});
  auto files = samples(d);
  auto before = contents(files);
  // One file at a time, in the background (exec: the shell's pid becomes tsign's).
  std::string cmd = emu.action_env(d.path / "bin", "INPUT_CONCURRENCY=1") + "RUNNER_TEMP=" + d.q() +
                    " GITHUB_STEP_SUMMARY=" + d.q("summary.md") + " exec " + tsign_cmd() +
                    " action >" + d.q("log.txt") + " 2>&1";
  const char* argv[] = {"/bin/sh", "-c", cmd.c_str(), nullptr};
  pid_t pid = -1;
  REQUIRE(posix_spawn(&pid, "/bin/sh", nullptr, nullptr, const_cast<char**>(argv), environ) == 0);
  // Signal once the service has answered a sign request: a file is then in flight.
  auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (emu.count("sign") == 0 && std::chrono::steady_clock::now() < give_up)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  REQUIRE(emu.count("sign") > 0);
  REQUIRE(kill(pid, SIGINT) == 0);
  int status = 0;
  REQUIRE(waitpid(pid, &status, 0) == pid);
  auto log = read_file(d.path / "log.txt");
  INFO(log);
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 130);
  CHECK(log.find("interrupted by SIGINT") != std::string::npos);
  int signed_files = 0, unchanged = 0;
  for (std::size_t i = 0; i < files.size(); ++i) {
    if (read_file(files[i]) == before[i]) {
      ++unchanged;
    } else {
      CHECK(emu.verify(files[i]).code == 0);
      ++signed_files;
    }
  }
  CHECK(signed_files >= 1);  // the one in flight was finished
  CHECK(unchanged >= 1);     // and no new one was started
  CHECK(listing(d.path / "bin").size() == files.size());
  auto summary = read_file(d.path / "summary.md");
  CHECK(summary.find("**Interrupted** by SIGINT") != std::string::npos);
  CHECK(summary.find("| Exit code | 130 |") != std::string::npos);
  auto report = boost::json::parse(read_file(d.path / "tsign-report.json")).as_object();
  CHECK(report.at("exit_code").as_int64() == 130);
  CHECK(report.at("interrupted").as_string() == "SIGINT");
  CHECK(report.at("deadline_passed").as_bool() == false);
}

// ---- The write path (issue 12, items 5 and 10) ----

TEST_CASE("a file edited while tsign waits for the service fails and keeps the edit",
          "[integration][cloud][write]") {
  TempDir d;
  // The service answers the sign request "in progress, come back in 3 s": the file is edited
  // in that window, after its digest went out and before the signed copy is written.
  Emulator emu(emulator_state(d), {"--polls-before-success", "0", "--poll-retry-after", "3"});
  // A PE, a cabinet (its header rewritten) and an MSI (its tables patched afterwards), each
  // copied while it is hashed. Each is edited inside its data: for the PE inside its first
  // section (0x600 on), for the others half-way.
  const struct {
    const char* fixture;
    const char* name;
    std::size_t from;
  } kinds[] = {{"pe64.exe", "app.exe", 0x600},
               {"cab-plain.cab", "setup.cab", 0},
               {"msi.msi", "setup.msi", 0}};
  int signs = 0;
  for (const auto& k : kinds) {
    INFO(k.name);
    auto f = d.copy(k.fixture, std::string("bin/") + k.name);
    auto run = std::async(std::launch::async, [&] {
      return sh(emu.action_env(d.path / "bin", "INPUT_TIMEOUT=60") + tsign_cmd() + " action");
    });
    // Waiting on the thing itself: the sign request in the emulator's log.
    while (emu.count("sign") == signs &&
           run.wait_for(std::chrono::milliseconds(5)) != std::future_status::ready) {
    }
    REQUIRE(emu.count("sign") == ++signs);
    // Swap two different 16-bit words, in place: the size and a PE's checksum (a sum of words)
    // stay the same, the content does not.
    auto bytes = read_file(f);
    std::size_t at = k.from ? k.from : bytes.size() / 2;
    while (bytes.compare(at, 2, bytes, at + 2, 2) == 0) at += 2;
    REQUIRE(at + 4 < bytes.size());
    std::swap_ranges(bytes.begin() + static_cast<std::ptrdiff_t>(at),
                     bytes.begin() + static_cast<std::ptrdiff_t>(at + 2),
                     bytes.begin() + static_cast<std::ptrdiff_t>(at + 2));
    const auto mtime = fs::last_write_time(f);
    {
      std::fstream io(f, std::ios::in | std::ios::out | std::ios::binary);
      io.seekp(static_cast<std::streamoff>(at));
      io.write(bytes.data() + at, 4);
      REQUIRE(io.good());
    }
    // And the modification time put back, as `touch -r` or an archiver would: the edit is still
    // seen (the copy was written while hashing; what shows an edit since is the file's stamp).
    fs::last_write_time(f, mtime);
    auto r = run.get();
    INFO(r.out);
    CHECK(r.code == 1);
    CHECK(r.out.find("changed while it was being signed") != std::string::npos);
    CHECK(r.out.find(k.name) != std::string::npos);
    CHECK(read_file(f) == bytes);  // the user's edit, not a copy signed over other bytes
    CHECK(listing(d.path / "bin") == std::vector<std::string>{k.name});
    fs::remove(f);
  }
}

TEST_CASE("a PE that would reach 4 GiB once signed is refused before a signature is requested",
          "[integration][cloud][write]") {
  TempDir d;
  Emulator emu(emulator_state(d));
  // Sparse: 4 GiB less 1 KiB of which only the fixture's bytes take disk space. Under 4 GiB, so
  // it opens; the certificate table cannot fit below the 4 GiB the PE fields can address.
  auto f = d.copy("pe64.exe", "bin/huge.exe");
  const std::uint64_t size = (std::uint64_t{1} << 32) - 1024;
  fs::resize_file(f, size);
  auto head = read_file(fixture("pe64.exe"));
  auto r = sh(emu.action_env(d.path / "bin", "INPUT_TIMEOUT=120") + tsign_cmd() + " action");
  INFO(r.out);
  CHECK(r.code == 1);
  CHECK(r.out.find("huge.exe") != std::string::npos);
  CHECK(r.out.find("4 GiB") != std::string::npos);
  CHECK(emu.count("sign") == 0);  // nothing paid for in vain
  CHECK(fs::file_size(f) == size);
  std::ifstream in(f, std::ios::binary);
  std::string start(head.size(), '\0');
  in.read(start.data(), static_cast<std::streamsize>(start.size()));
  CHECK(start == head);
  CHECK(listing(d.path / "bin") == std::vector<std::string>{"huge.exe"});
}

TEST_CASE("an endpoint is read as written: look-alike authorities are refused before any request",
          "[integration][cloud][bad-input]") {
  TempDir d;
  Emulator emu(emulator_state(d));
  auto files = samples(d);
  auto before = contents(files);
  auto base = emu.action_env(d.path / "bin");
  // TSIGN_ALLOWED_HOSTS is the emulator's "127.0.0.1,localhost"; its endpoint carries the port.
  std::string endpoint = emu.var("TSIGN_EMULATOR_ENDPOINT");
  std::string port = endpoint.substr(std::string("https://127.0.0.1:").size());
  port.pop_back();  // the trailing '/'
  for (std::string bad : {
           std::string("https://127.0.0.1.evil.com/"),  // a dotted quad, then more labels
           "https://127.0.0.1x:" + port + "/",          // ... then more characters and the port
           "https://127.0.0.1%40evil.com:" + port + "/",
           "https://127.0.0.1:" + port + "x/",          // the path does not start with '/'
           "https://127.0.0.1:" + port + "@evil.com/",  // user information
           "https://user@127.0.0.1:" + port + "/",
       }) {
    auto r = sh(base + "INPUT_ENDPOINT=" + quote(bad) + " " + tsign_cmd() + " action");
    INFO(bad << "\n" << r.out);
    CHECK(r.code == 2);
    std::string shown;  // as a workflow command writes it: '%' escaped
    for (char c : bad) shown += c == '%' ? std::string("%25") : std::string(1, c);
    CHECK(r.out.find("endpoint '" + shown + "'") != std::string::npos);
  }
  // Nothing was requested of anyone: no GitHub token, no Entra token, no signature.
  CHECK(emu.request_log().empty());
  CHECK(contents(files) == before);
}

// ---- Service API versions (docs/usage.md "Service API versions")
// --------------------------------------

namespace {

// The emulator's request log, one JSON object per request.
std::vector<boost::json::object> log_lines(const Emulator& emu) {
  std::vector<boost::json::object> v;
  std::istringstream in(emu.request_log());
  std::string line;
  while (std::getline(in, line)) v.push_back(boost::json::parse(line).as_object());
  return v;
}

// How many requests of `kind` used `api` (and, if given, got `status`).
int count_api(const Emulator& emu, const std::string& kind, const std::string& api,
              int status = 0) {
  int n = 0;
  for (const auto& l : log_lines(emu))
    if (l.at("kind").as_string() == kind && l.contains("api") && l.at("api").as_string() == api &&
        (status == 0 || l.at("status").as_int64() == status))
      ++n;
  return n;
}

}  // namespace

TEST_CASE("a service that speaks only the GA api-version 2024-06-15", "[integration][cloud][api]") {
  TempDir d;
  Emulator emu(emulator_state(d), {"--api-versions", "2024-06-15"});
  auto files = samples(d);
  auto r = sh(emu.action_env(d.path / "bin", "RUNNER_DEBUG=1") + tsign_cmd() + " action");
  INFO(r.out);
  REQUIRE(r.code == 0);
  for (auto& f : files) CHECK(emu.verify(f).code == 0);
  CHECK(count_api(emu, "sign", "2024-06-15", 202) == 5);
  CHECK(count_api(emu, "poll", "2024-06-15", 200) == emu.count("poll"));
  CHECK(emu.request_log().find("unsupported-version") == std::string::npos);
  CHECK(r.out.find("api-version 2024-06-15") != std::string::npos);  // the debug line
}

TEST_CASE("trace (action) and --verbose (command line) turn the debug lines on",
          "[integration][cloud][api]") {
  TempDir d;
  Emulator emu(emulator_state(d), {"--api-versions", "2024-06-15"});
  samples(d);
  const std::string debug_line = "api-version 2024-06-15: accepted by the service";
  auto quiet = sh(emu.action_env(d.path / "bin") + tsign_cmd() + " action");
  INFO(quiet.out);
  REQUIRE(quiet.code == 0);
  CHECK(quiet.out.find(debug_line) == std::string::npos);
  auto traced = sh(emu.action_env(d.path / "bin", "INPUT_TRACE=true") + tsign_cmd() + " action");
  INFO(traced.out);
  REQUIRE(traced.code == 0);
  CHECK(traced.out.find("::debug::") != std::string::npos);
  CHECK(traced.out.find(debug_line) != std::string::npos);
  auto verbose = sh(emu.env() + tsign_cmd() + " sign --verbose --endpoint " +
                    quote(emu.var("TSIGN_EMULATOR_ENDPOINT")) + " --signing-account-name " +
                    quote(emu.var("TSIGN_EMULATOR_ACCOUNT")) + " --certificate-profile-name " +
                    quote(emu.var("TSIGN_EMULATOR_PROFILE")) + " --timestamp-rfc3161 " +
                    quote(emu.var("TSIGN_EMULATOR_TSA")) + " --files-folder " + d.q("bin"));
  INFO(verbose.out);
  REQUIRE(verbose.code == 0);
  CHECK(verbose.out.find(debug_line) != std::string::npos);
}

TEST_CASE("a service that refuses the GA version: one fallback to the preview for the whole run",
          "[integration][cloud][api]") {
  for (std::string status : {"400", "401", "404"}) {
    TempDir d;
    Emulator emu(emulator_state(d),
                 {"--api-versions", "2022-06-15-preview", "--unsupported-version-status", status});
    auto files = samples(d);
    // Five files in flight at once: still one refused request, then every one on the preview.
    auto r = sh(emu.action_env(d.path / "bin", "RUNNER_DEBUG=1") + tsign_cmd() + " action");
    INFO(status << "\n" << r.out);
    REQUIRE(r.code == 0);
    for (auto& f : files) CHECK(emu.verify(f).code == 0);
    CHECK(count_api(emu, "sign", "2024-06-15") == 1);
    CHECK(count_api(emu, "sign", "2024-06-15", std::stoi(status)) == 1);
    CHECK(count_api(emu, "sign", "2022-06-15-preview", 202) == 5);
    CHECK(count_api(emu, "poll", "2022-06-15-preview", 200) == emu.count("poll"));
    CHECK(r.out.find("refused api-version 2024-06-15 (HTTP " + status) != std::string::npos);
    CHECK(r.out.find("using 2022-06-15-preview for the rest of the run") != std::string::npos);
  }
}

TEST_CASE("api-version pins one version, which never falls back", "[integration][cloud][api]") {
  TempDir d;
  Emulator emu(emulator_state(d), {"--api-versions", "2024-06-15"});
  auto files = samples(d);
  auto before = contents(files);
  auto base = emu.action_env(d.path / "bin");

  // The preview pinned against a GA-only service: refused, no fallback, every file unchanged.
  auto pinned = sh(base + "INPUT_API_VERSION=2022-06-15-preview " + tsign_cmd() + " action");
  INFO(pinned.out);
  CHECK(pinned.code == 2);
  CHECK(pinned.out.find("does not accept api-version 2022-06-15-preview") != std::string::npos);
  CHECK(count_api(emu, "sign", "2022-06-15-preview") >= 1);
  CHECK(count_api(emu, "sign", "2024-06-15") == 0);
  CHECK(contents(files) == before);

  // Not a version tsign speaks: input error 2 naming the option, nothing requested.
  auto signs = emu.count("sign");
  auto entra = emu.count("entra");
  auto bad = sh(base + "INPUT_API_VERSION=2023-06-15-preview " + tsign_cmd() + " action");
  INFO(bad.out);
  CHECK(bad.code == 2);
  CHECK(bad.out.find("api-version") != std::string::npos);
  CHECK(emu.count("sign") == signs);
  CHECK(emu.count("entra") == entra);

  // The GA version pinned, as a flag of `tsign sign`: signed.
  auto flag = sh(emu.env() + tsign_cmd() + " sign --api-version 2024-06-15 --endpoint " +
                 quote(emu.var("TSIGN_EMULATOR_ENDPOINT")) + " --signing-account-name " +
                 quote(emu.var("TSIGN_EMULATOR_ACCOUNT")) + " --certificate-profile-name " +
                 quote(emu.var("TSIGN_EMULATOR_PROFILE")) + " --timestamp-rfc3161 " +
                 quote(emu.var("TSIGN_EMULATOR_TSA")) + " " + quote(files[0]));
  INFO(flag.out);
  CHECK(flag.code == 0);
  CHECK(emu.verify(files[0]).code == 0);
}

TEST_CASE("a service that refuses both versions: the first refusal is reported, one fallback",
          "[integration][cloud][api]") {
  TempDir d;
  Emulator emu(emulator_state(d), {"--api-versions", "2023-06-15-preview"});
  auto files = samples(d);
  auto before = contents(files);
  auto r = sh(emu.action_env(d.path / "bin") + tsign_cmd() + " action");
  INFO(r.out);
  CHECK(r.code == 2);
  CHECK(r.out.find("does not accept api-version 2024-06-15") != std::string::npos);
  CHECK(r.out.find("2022-06-15-preview was refused too") != std::string::npos);
  CHECK(count_api(emu, "sign", "2022-06-15-preview") == 1);  // the one fallback of the run
  CHECK(contents(files) == before);
}

namespace {

// `n` small PE files in d/bin, alternately 32-bit EXE and 64-bit DLL.
std::vector<fs::path> many(const TempDir& d, int n) {
  std::vector<fs::path> v;
  for (int i = 0; i < n; ++i)
    v.push_back(d.copy(i % 2 ? "pe64.dll" : "pe32.exe",
                       "bin/f" + std::to_string(i) + (i % 2 ? ".dll" : ".exe")));
  return v;
}

}  // namespace

TEST_CASE("a long run on 4-second tokens, every third signing request throttled or failing",
          "[integration][cloud][faults][tokens]") {
  // A retry after a 429 or a 503 must carry a token valid when it is sent, and a 401 for an
  // expired token gets a new one: every file signed, each with exactly one paid signature.
  for (std::string fault : {"--throttle-every", "--fail-every"}) {
    TempDir d;
    Emulator emu(emulator_state(d), {"--access-token-lifetime", "4", fault, "3"});
    auto files = many(d, 60);
    auto r = sh(emu.action_env(d.path / "bin") + tsign_cmd() + " action");
    INFO(fault << "\n" << r.out);
    CHECK(r.code == 0);
    int verified = 0;
    for (auto& f : files) verified += emu.verify(f).code == 0;
    CHECK(verified == 60);
    CHECK(emu.signatures_issued() == 60);
    CHECK(emu.count("entra") >= 2);  // the run did outlive its first token
  }
}

TEST_CASE("poll answers cut short are polled again: every file signed, one signature each",
          "[integration][cloud][faults]") {
  TempDir d;
  Emulator emu(emulator_state(d), {"--malformed-polls-every", "3"});
  auto files = samples(d);
  auto r = sh(emu.action_env(d.path / "bin") + tsign_cmd() + " action");
  INFO(r.out);
  CHECK(r.code == 0);
  for (auto& f : files) CHECK(emu.verify(f).code == 0);
  CHECK(emu.signatures_issued() == 5);
  CHECK(emu.request_log().find("\"fault\":\"malformed\"") != std::string::npos);
}

TEST_CASE("a sign request whose connection closes after it was sent is not sent again",
          "[integration][cloud][faults]") {
  // The service may have accepted it (a paid signature): a second request could be charged
  // twice. The file fails with the reason; the others are unaffected by it.
  TempDir d;
  Emulator emu(emulator_state(d), {"--drop-every", "1"});
  auto files = samples(d);
  auto before = contents(files);
  auto r = sh(emu.action_env(d.path / "bin", "INPUT_TIMEOUT=60") + tsign_cmd() + " action");
  INFO(r.out);
  CHECK(r.code == 1);
  CHECK(r.out.find("not sent again") != std::string::npos);
  CHECK(emu.count("sign") == 5);  // one request per file
  CHECK(contents(files) == before);
  CHECK(listing(d.path / "bin").size() == files.size());
}

TEST_CASE("max-signatures: the service issues no more than the budget, exit 5, the rest unchanged",
          "[integration][cloud][budget]") {
  TempDir d;
  Emulator emu(emulator_state(d));
  auto files = samples(d);
  auto before = contents(files);
  auto r = sh(emu.action_env(d.path / "bin", "INPUT_MAX_SIGNATURES=2 INPUT_CONCURRENCY=5") +
              "RUNNER_TEMP=" + d.q() + " GITHUB_OUTPUT=" + d.q("out") +
              " GITHUB_STEP_SUMMARY=" + d.q("summary.md") + " " + tsign_cmd() + " action");
  INFO(r.out);
  CHECK(r.code == 5);
  CHECK(emu.signatures_issued() == 2);
  int signed_files = 0;
  for (std::size_t i = 0; i < files.size(); ++i) {
    if (read_file(files[i]) == before[i]) continue;
    CHECK(emu.verify(files[i]).code == 0);
    ++signed_files;
  }
  CHECK(signed_files == 2);
  CHECK(r.out.find("max-signatures (2)") != std::string::npos);
  auto summary = read_file(d.path / "summary.md");
  CHECK(summary.find("| Signatures requested | 2 of at most 2 (max-signatures) |") !=
        std::string::npos);
  CHECK(summary.find("| Exit code | 5 |") != std::string::npos);
  auto report = read_file(d.path / "tsign-report.json");
  CHECK(report.find(R"("signatures":{"requested":2,"max":2,"budget_reached":true})") !=
        std::string::npos);
}

TEST_CASE("several time-stamp authorities: the next is asked when one fails, for each file",
          "[integration][cloud][timestamp]") {
  TempDir d;
  Emulator emu(emulator_state(d));
  auto files = samples(d);
  // An address that answers 404 to a time-stamp request: the emulator's signing service.
  const std::string broken = emu.var("TSIGN_EMULATOR_ENDPOINT") + "no-time-stamps-here";
  SECTION("the second authority stamps every file") {
    auto r = sh(emu.action_env(d.path / "bin", "INPUT_FILES_FOLDER_FILTER=dll,exe") +
                "INPUT_TIMESTAMP_RFC3161=" + quote(broken + ", " + emu.var("TSIGN_EMULATOR_TSA")) +
                " GITHUB_STEP_SUMMARY=" + d.q("summary.md") + " " + tsign_cmd() + " action");
    INFO(r.out);
    REQUIRE(r.code == 0);
    for (auto& f : files) {
      auto v = emu.verify(f);
      INFO(f << "\n" << v.out);
      CHECK(v.code == 0);
      CHECK(v.out.find("Timestamp") != std::string::npos);
    }
    CHECK(emu.count("tsa") == 5);
    CHECK(r.out.find("time-stamp authority " + broken + ": answered HTTP 404; the next one") !=
          std::string::npos);
    CHECK(read_file(d.path / "summary.md").find(broken + ", " + emu.var("TSIGN_EMULATOR_TSA")) !=
          std::string::npos);
  }
  SECTION("none answers: each file fails naming every authority, and is unchanged") {
    auto before = contents(files);
    auto r = sh(emu.action_env(d.path / "bin", "INPUT_FILES_FOLDER_FILTER=dll,exe") +
                "INPUT_TIMESTAMP_RFC3161=" + quote(broken + "," + broken + "2") + " " +
                tsign_cmd() + " action");
    INFO(r.out);
    CHECK(r.code == 1);
    CHECK(r.out.find("no time-stamp authority gave a time-stamp: " + broken +
                     ": answered HTTP 404; " + broken + "2: answered HTTP 404") !=
          std::string::npos);
    CHECK(contents(files) == before);
  }
}

TEST_CASE(
    "client certificate credentials: PEM, PKCS#12 with its password, x5c (subject name + "
    "issuer)",
    "[integration][cloud][credentials]") {
  TempDir d;
  Emulator emu(emulator_state(d));
  const fs::path pem = emu.var("TSIGN_EMULATOR_CLIENT_CERT_PEM");
  const fs::path pfx = emu.var("TSIGN_EMULATOR_CLIENT_CERT_PFX");
  const std::string password = emu.var("TSIGN_EMULATOR_CLIENT_CERT_PASSWORD");
  const fs::path state = pem.parent_path();
  // The environment credential only: the GitHub OIDC link would also get a token.
  const std::string only_env = "INPUT_EXCLUDE_WORKLOAD_IDENTITY_CREDENTIAL=true ";
  auto run = [&](const std::string& sub, const std::string& extra) {
    d.copy("pe64.exe", sub + "/a.exe");
    d.copy("pe32.dll", sub + "/b.dll");
    return sh(emu.action_env(d.path / sub, only_env + extra) + tsign_cmd() + " action");
  };
  auto verified = [&](const std::string& sub) {
    for (auto n : {"a.exe", "b.dll"}) {
      auto v = emu.verify(d.path / sub / n);
      INFO(v.out);
      CHECK(v.code == 0);
    }
  };
  // The password reaches the log only on the line that tells the runner to mask it.
  auto never_logged = [](const std::string& out, const std::string& secret) {
    std::istringstream lines(out);
    std::string line;
    while (std::getline(lines, line))
      if (line.rfind("::add-mask::", 0) != 0) CHECK(line.find(secret) == std::string::npos);
  };

  SECTION("PEM through AZURE_CLIENT_CERTIFICATE_PATH") {
    auto r = run("pem", "AZURE_CLIENT_CERTIFICATE_PATH=" + quote(pem));
    INFO(r.out);
    REQUIRE(r.code == 0);
    verified("pem");
    CHECK(emu.count("oidc") == 0);
    CHECK(emu.count("entra") == 1);
  }
  SECTION("PKCS#12 through the inputs, with its password, which the log never shows") {
    auto r = run("pfx", "INPUT_AZURE_CLIENT_CERTIFICATE_PATH=" + quote(pfx) +
                            " INPUT_AZURE_CLIENT_CERTIFICATE_PASSWORD=" + quote(password));
    INFO(r.out);
    REQUIRE(r.code == 0);
    verified("pfx");
    never_logged(r.out, password);
    CHECK(r.out.find("::add-mask::" + password) != std::string::npos);
    CHECK(emu.count("oidc") == 0);
    // And through AZURE_CLIENT_CERTIFICATE_PASSWORD, as the Azure SDKs read it.
    auto e = run("pfx-env", "AZURE_CLIENT_CERTIFICATE_PATH=" + quote(pfx) +
                                " AZURE_CLIENT_CERTIFICATE_PASSWORD=" + quote(password));
    INFO(e.out);
    CHECK(e.code == 0);
    never_logged(e.out, password);
  }
  SECTION("a wrong password: exit 2 naming the file, not the password; files unchanged") {
    const std::string wrong = "wrong-pass-7731";
    d.copy("pe64.exe", "orig.exe");
    auto r = run("bad", "INPUT_AZURE_CLIENT_CERTIFICATE_PATH=" + quote(pfx) +
                            " INPUT_AZURE_CLIENT_CERTIFICATE_PASSWORD=" + wrong);
    INFO(r.out);
    CHECK(r.code == 2);
    CHECK(r.out.find(pfx.string()) != std::string::npos);
    CHECK(r.out.find("wrong password") != std::string::npos);
    never_logged(r.out, wrong);
    CHECK(read_file(d.path / "bad/a.exe") == read_file(d.path / "orig.exe"));
    CHECK(emu.count("entra") == 0);
    CHECK(emu.count("sign") == 0);
  }
  SECTION("x5c: a renewed certificate of the registered subject from the client CA") {
    // Same subject, same issuer, new key: not the registered certificate, so its thumbprint is
    // unknown; with x5c the emulator trusts it by subject name + issuer.
    auto make =
        sh("cd " + d.q() + " && openssl req -new -newkey rsa:2048 -nodes -keyout renewed.key" +
           " -subj '/O=tsign emulator/CN=tsign-emulator-client' -out renewed.csr 2>&1 &&" +
           " openssl x509 -req -in renewed.csr -CA " + quote(state / "client-ca.pem") + " -CAkey " +
           quote(state / "client-ca.key") +
           " -days 2 -out renewed.crt 2>&1 && cat renewed.crt renewed.key " +
           quote(state / "client-ca.pem") + " > renewed.pem" +
           // The same subject from a self-made CA of the same name.
           " && openssl req -x509 -newkey rsa:2048 -nodes -keyout fake-ca.key -days 2" +
           " -subj '/O=tsign emulator/CN=tsign Emulator Client CA' -out fake-ca.pem 2>&1" +
           " && openssl x509 -req -in renewed.csr -CA fake-ca.pem -CAkey fake-ca.key" +
           " -days 2 -out foreign.crt 2>&1 && cat foreign.crt renewed.key fake-ca.pem" +
           " > foreign.pem && echo made");
    INFO(make.out);
    REQUIRE(make.code == 0);
    auto without = run("no-x5c", "AZURE_CLIENT_CERTIFICATE_PATH=" + d.q("renewed.pem"));
    INFO(without.out);
    CHECK(without.code == 3);
    CHECK(without.out.find("AADSTS700027") != std::string::npos);
    auto with = run("x5c", "AZURE_CLIENT_CERTIFICATE_PATH=" + d.q("renewed.pem") +
                               " INPUT_AZURE_CLIENT_SEND_CERTIFICATE_CHAIN=true");
    INFO(with.out);
    REQUIRE(with.code == 0);
    verified("x5c");
    auto env = run("x5c-env", "AZURE_CLIENT_CERTIFICATE_PATH=" + d.q("renewed.pem") +
                                  " AZURE_CLIENT_SEND_CERTIFICATE_CHAIN=true");
    INFO(env.out);
    CHECK(env.code == 0);
    auto foreign = run("foreign", "AZURE_CLIENT_CERTIFICATE_PATH=" + d.q("foreign.pem") +
                                      " INPUT_AZURE_CLIENT_SEND_CERTIFICATE_CHAIN=true");
    INFO(foreign.out);
    CHECK(foreign.code == 3);
    CHECK(foreign.out.find("AADSTS700027") != std::string::npos);
    d.copy("pe64.exe", "orig.exe");
    CHECK(read_file(d.path / "foreign/a.exe") == read_file(d.path / "orig.exe"));
  }
}
