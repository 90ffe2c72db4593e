// Tests of `tsign emulator` as a command (src/emulator/emulator.cpp): its options and what it
// prints.
#include <catch2/catch.hpp>

#include <cstdlib>
#include <string>
#include <vector>

#include "common/error.hpp"

#include "client.hpp"

namespace http = boost::beast::http;
namespace json = boost::json;
namespace fs = std::filesystem;
using namespace tsign;
using namespace tsign::emulator;
using namespace emu_test;

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
