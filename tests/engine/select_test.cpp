// File selection (engine/select.cpp) and the run's clock: the deadline covers choosing the
// files, links resolve to one target each, and what selection refuses it refuses before any
// file is opened for signing.
#include <catch2/catch.hpp>

#include <chrono>

#include "common/error.hpp"
#include "common/log.hpp"
#include "engine/engine.hpp"
#include "engine/select.hpp"
#include "support/fixtures.hpp"

using namespace tsign;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

TEST_CASE("the deadline covers file selection", "[select][deadline]") {
  tsign::test::TempDir d("select");
  fs::copy_file(tsign::test::fixture("pe64.exe"), d.path() / "app.exe");
  engine::SelectionRequest req;
  req.folder = d.path().string();
  req.timeout = std::chrono::seconds(1);
  req.deadline = Clock::now() - std::chrono::milliseconds(1);  // spent before the scan ended
  try {
    engine::select_files(req);
    FAIL("no DeadlineError");
  } catch (const DeadlineError& e) {
    CHECK(std::string(e.what()).find("selecting files") != std::string::npos);
    CHECK(e.code() == ExitCode::deadline);
  }
  req.deadline = Clock::now() + std::chrono::minutes(1);
  CHECK(engine::select_files(req).files.size() == 1);
}

TEST_CASE("the run's clock starts where the caller says: time spent selecting counts",
          "[select][deadline]") {
  tsign::test::TempDir d("select");
  auto f = d.path() / "app.exe";
  fs::copy_file(tsign::test::fixture("pe64.exe"), f);
  engine::Settings st;
  st.dry_run = true;  // no signer needed
  st.timeout = std::chrono::seconds(5);
  st.started = Clock::now() - std::chrono::seconds(6);  // selection took longer than the timeout
  NullLog log;
  auto r = engine::run(std::vector<fs::path>{f}, st, {}, log);
  REQUIRE(r.files.size() == 1);
  CHECK(r.files[0].status == engine::Status::failed);
  CHECK(r.files[0].error.find("deadline") != std::string::npos);
  CHECK(r.files[0].bytes == fs::file_size(f));  // a failed row still shows the file's size
  CHECK(r.exit_code() == ExitCode::deadline);
}
