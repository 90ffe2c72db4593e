// The selection rules of engine/select.cpp in-process (docs/usage.md "Symbolic links", interface.md
// files-folder-*), where tests/integration does not already hold them through the binary:
// filter entries, depth without and with recursion, formats chosen by content, one entry per
// file however it is named, hard links, catalog lines, tsign's own temporaries, and the messages
// of an empty or impossible selection.
#include <catch2/catch.hpp>

#include <fstream>
#include <set>

#include "common/error.hpp"
#include "common/log.hpp"
#include "engine/engine.hpp"
#include "engine/select.hpp"
#include "fake_signer.hpp"
#include "support/fixtures.hpp"

using namespace tsign;
using namespace tsign::test;
using engine::matches_filter;
namespace fs = std::filesystem;

namespace {

fs::path put(const TempDir& d, const std::string& name, const std::string& fixture_name) {
  auto p = d.path() / name;
  fs::create_directories(p.parent_path());
  fs::copy_file(fixture(fixture_name), p);
  return p;
}
fs::path write_text(const TempDir& d, const std::string& name, const std::string& text) {
  auto p = d.path() / name;
  fs::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary) << text;
  return p;
}

// The selected names relative to `d`, in the selection's order.
std::vector<std::string> relative(const engine::Selection& s, const TempDir& d) {
  std::vector<std::string> out;
  for (const auto& f : s.files) out.push_back(f.path.lexically_relative(d.path()).generic_string());
  return out;
}

engine::SelectionRequest folder(const TempDir& d) {
  engine::SelectionRequest r;
  r.folder = d.path().string();
  return r;
}

std::string input_error(const engine::SelectionRequest& r) {
  try {
    engine::select_files(r);
  } catch (const InputError& e) {
    return e.what();
  }
  FAIL_CHECK("no InputError");
  return {};
}

}  // namespace

TEST_CASE("filter entries: an extension with or without its dot, a whole name, a glob, any case",
          "[select][filter]") {
  CHECK(matches_filter("App.DLL", "dll"));
  CHECK(matches_filter("app.dll", ".DLL"));
  CHECK_FALSE(matches_filter("app.dll.bak", "dll"));
  CHECK_FALSE(matches_filter("dll.exe", "dll"));
  CHECK(matches_filter("CORE.dll", "core.dll"));
  CHECK_FALSE(matches_filter("core.dll", "ore.dll"));
  CHECK(matches_filter("setup-x64.exe", "setup-*.exe"));
  CHECK(matches_filter("a1.sys", "a?.sys"));
  CHECK_FALSE(matches_filter("a12.sys", "a?.sys"));
  CHECK(matches_filter("anything", "*"));
}

TEST_CASE("depth: the folder alone without recurse, and recurse descends `depth` levels",
          "[select][folder]") {
  TempDir d("select");
  put(d, "top.exe", "pe64.exe");
  put(d, "one/mid.dll", "pe64.dll");
  put(d, "one/two/deep.dll", "pe32.dll");
  auto r = folder(d);
  CHECK(relative(engine::select_files(r), d) == std::vector<std::string>{"top.exe"});
  r.depth = 5;  // depth alone does not recurse
  CHECK(relative(engine::select_files(r), d) == std::vector<std::string>{"top.exe"});
  r.recurse = true;
  r.depth = 0;
  CHECK(relative(engine::select_files(r), d) == std::vector<std::string>{"top.exe"});
  r.depth = 1;
  CHECK(relative(engine::select_files(r), d) == std::vector<std::string>{"one/mid.dll", "top.exe"});
  r.depth.reset();
  CHECK(relative(engine::select_files(r), d) ==
        std::vector<std::string>{"one/mid.dll", "one/two/deep.dll", "top.exe"});
}

TEST_CASE("without a filter files are chosen by content, not by name", "[select][folder]") {
  TempDir d("select");
  put(d, "program.txt", "pe64.exe");  // a PE whatever its name
  write_text(d, "fake.dll", "MZ but not really");
  write_text(d, "readme.md", "text");
  auto r = folder(d);
  CHECK(relative(engine::select_files(r), d) == std::vector<std::string>{"program.txt"});
  // A filter chooses by name: the content is judged when the file is signed.
  r.filter = {"dll"};
  CHECK(relative(engine::select_files(r), d) == std::vector<std::string>{"fake.dll"});
}

TEST_CASE("without a filter, scripts and app packages are selected by their names too",
          "[select][folder]") {
  TempDir d("select");
  put(d, "app.exe", "pe64.exe");
  write_text(d, "tools/App.appx", "PK not checked here: the name decides");
  write_text(d, "tools/install.ps1", "Write-Host hi\r\n");
  write_text(d, "readme.md", "text");
  auto r = folder(d);
  r.recurse = true;
  auto sel = engine::select_files(r);
  // A file named like an app package is taken (and refused with the reason when it is signed),
  // never passed over in silence; readme.md is nobody's to sign.
  CHECK(relative(sel, d) ==
        std::vector<std::string>{"app.exe", "tools/App.appx", "tools/install.ps1"});
  CHECK(sel.skipped.empty());
  // Nothing tsign signs: the error says what was searched.
  fs::remove(d.path() / "app.exe");
  fs::remove_all(d.path() / "tools");
  CHECK(input_error(r).find("no files to sign: searched folder") != std::string::npos);
}

TEST_CASE("a file named twice, by a relative and an absolute name, is selected once",
          "[select][files]") {
  TempDir d("select");
  auto app = put(d, "app.exe", "pe64.exe");
  engine::SelectionRequest r;
  r.files = {app.string(), app.string(), (d.path() / "." / "app.exe").string()};
  auto s = engine::select_files(r);
  REQUIRE(s.files.size() == 1);
  CHECK(s.files[0].target == s.files[0].path);
  // The other spelling is kept for the report, the repeated one is not.
  REQUIRE(s.files[0].aliases.size() == 1);
  std::set<fs::path> names{s.files[0].path, s.files[0].aliases[0]};
  CHECK(names == std::set<fs::path>{app, d.path() / "." / "app.exe"});
}

#ifndef _WIN32
TEST_CASE("a link to a folder is not followed, and a dangling link named in files is refused",
          "[select][links]") {
  TempDir d("select");
  put(d, "bin/app.exe", "pe64.exe");
  put(d, "elsewhere/other.exe", "pe64.exe");
  fs::create_directory_symlink("../elsewhere", d.path() / "bin/linked");
  engine::SelectionRequest r;
  r.folder = (d.path() / "bin").string();
  r.recurse = true;
  auto s = engine::select_files(r);
  REQUIRE(s.files.size() == 1);
  CHECK(s.files[0].path.filename() == "app.exe");
  CHECK(s.skipped.empty());

  fs::create_symlink("gone.exe", d.path() / "dangling.exe");
  engine::SelectionRequest f;
  f.files = {(d.path() / "dangling.exe").string()};
  auto msg = input_error(f);
  CHECK(msg.find("dangling.exe") != std::string::npos);
  CHECK(msg.find("a symbolic link to 'gone.exe', which does not exist") != std::string::npos);
  CHECK(msg.find("nothing was signed") != std::string::npos);
}

TEST_CASE("a hard link is its own name: the signed copy replaces that name only",
          "[select][links]") {
  TempDir d("select");
  auto a = put(d, "a.exe", "pe64.exe");
  auto b = d.path() / "b.exe";
  fs::create_hard_link(a, b);
  auto before = read_all(b);
  engine::SelectionRequest r = folder(d);
  auto s = engine::select_files(r);
  CHECK(relative(s, d) == std::vector<std::string>{"a.exe", "b.exe"});  // not aliases
  CHECK(s.files[0].aliases.empty());

  engine::SelectionRequest only_a;
  only_a.files = {a.string()};
  auto state = std::make_shared<FakeSignerState>();
  NullLog log;
  auto res = engine::run(engine::select_files(only_a), engine::Settings{}, fake_signer(state), log);
  CHECK(res.exit_code() == ExitCode::ok);
  CHECK(state->calls == 1);
  CHECK(read_all(b) == before);  // the other name still reaches the unsigned file
  CHECK(read_all(a) != before);
  CHECK(fs::hard_link_count(b) == 1);
}
#endif

TEST_CASE("catalog lines: relative to the catalog's folder, trimmed, blank lines skipped",
          "[select][catalog]") {
  TempDir d("select");
  put(d, "list/app.exe", "pe64.exe");
  auto lib = put(d, "other/lib.dll", "pe64.dll");
  auto cat = write_text(d, "list/files.txt",
                        "  app.exe \r\n\r\n\t\n" + lib.string() + "\r\nmissing.dll\n");
  engine::SelectionRequest r;
  r.catalog = cat.string();
  auto s = engine::select_files(r);
  std::vector<fs::path> paths;
  for (const auto& f : s.files) paths.push_back(f.path);
  // A listed file that does not exist is kept, to fail on its own row, not the whole run.
  CHECK(paths ==
        std::vector<fs::path>{d.path() / "list/app.exe", d.path() / "list/missing.dll", lib});
}

TEST_CASE("tsign's own temporaries are listed for a warning, never selected", "[select][folder]") {
  TempDir d("select");
  put(d, "app.exe", "pe64.exe");
  put(d, ".tsign-0123456789ab.tmp", "pe64.exe");  // a PE by content, left by a killed run
  put(d, ".tsign-notes.tmp", "pe64.exe");         // not of the form tsign names its copies
  auto s = engine::select_files(folder(d));
  CHECK(relative(s, d) == std::vector<std::string>{".tsign-notes.tmp", "app.exe"});
  REQUIRE(s.temporaries.size() == 1);
  CHECK(s.temporaries[0].filename() == ".tsign-0123456789ab.tmp");
}

TEST_CASE("an empty or impossible selection says what was searched", "[select][errors]") {
  TempDir d("select");
  write_text(d, "readme.md", "text");
  auto r = folder(d);
  r.recurse = true;
  r.depth = 2;
  CHECK(input_error(r) == "no files to sign: searched folder '" + d.path().string() +
                              "' to depth 2 for supported files");
  r.filter = {"dll"};
  CHECK(input_error(r).find("for files matching the filter") != std::string::npos);
  CHECK(input_error({}) == "nothing to sign: give files, files-folder or files-catalog");
  engine::SelectionRequest nowhere;
  nowhere.folder = (d.path() / "no-such-dir").string();
  CHECK(input_error(nowhere).find("is not an existing folder") != std::string::npos);
  engine::SelectionRequest missing;
  missing.files = {(d.path() / "a.exe").string(), (d.path() / "b.exe").string()};
  auto msg = input_error(missing);
  CHECK(msg.find("a.exe'") != std::string::npos);
  CHECK(msg.find("b.exe'") != std::string::npos);
}

TEST_CASE("path globs: '/' anchors an entry at the folder, '**' spans any number of folders",
          "[select][filter]") {
  using engine::matches_path_filter;
  CHECK(matches_path_filter("a/b/bin/x.DLL", "**/bin/*.dll"));
  CHECK(matches_path_filter("bin/x.dll", "**/bin/*.dll"));  // '**' may be no folder at all
  CHECK_FALSE(matches_path_filter("bin/sub/x.dll", "**/bin/*.dll"));
  CHECK(matches_path_filter("bin/x.dll", "bin/*.dll"));
  CHECK_FALSE(matches_path_filter("src/bin/x.dll", "bin/*.dll"));  // anchored at the folder
  CHECK(matches_path_filter("src/bin/x.dll", "./src/**"));
  CHECK_FALSE(matches_path_filter("src/bin/x.dll", "src/*.dll"));       // '*' stays in one name
  CHECK(matches_path_filter("deep/in/the/tree/core.dll", "core.dll"));  // no '/': the name
  CHECK(matches_path_filter("deep/app.exe", "exe"));
}

TEST_CASE("exclusions: '!' entries take files out, listed as skipped with the entry",
          "[select][filter]") {
  TempDir d("select");
  put(d, "top.exe", "pe64.exe");
  put(d, "bin/App.dll", "pe64.dll");
  put(d, "bin/App.Tests.dll", "pe64.dll");
  put(d, "tests/bin/Other.Tests.dll", "pe32.dll");
  put(d, "src/x64/bin/core.dll", "pe64.dll");
  write_text(d, "tests/notes.txt", "not a binary");
  auto r = folder(d);
  r.recurse = true;

  r.filter = {"dll", "!*.Tests.dll"};
  auto sel = engine::select_files(r);
  CHECK(relative(sel, d) == std::vector<std::string>{"bin/App.dll", "src/x64/bin/core.dll"});
  REQUIRE(sel.skipped.size() == 2);
  CHECK(sel.skipped[0].path == d.path() / "bin" / "App.Tests.dll");
  CHECK(sel.skipped[0].reason == "excluded by the filter entry '!*.Tests.dll'");
  CHECK(sel.skipped[1].path == d.path() / "tests" / "bin" / "Other.Tests.dll");

  r.filter = {"**/bin/*.dll"};
  CHECK(relative(engine::select_files(r), d) ==
        std::vector<std::string>{"bin/App.Tests.dll", "bin/App.dll", "src/x64/bin/core.dll",
                                 "tests/bin/Other.Tests.dll"});
  r.filter = {"bin/*.dll"};
  CHECK(relative(engine::select_files(r), d) ==
        std::vector<std::string>{"bin/App.Tests.dll", "bin/App.dll"});

  // Exclusions alone: every file of a supported format (by content) but those.
  r.filter = {"!tests/**"};
  sel = engine::select_files(r);
  CHECK(relative(sel, d) == std::vector<std::string>{"bin/App.Tests.dll", "bin/App.dll",
                                                     "src/x64/bin/core.dll", "top.exe"});
  REQUIRE(sel.skipped.size() == 1);  // notes.txt was never a candidate
  CHECK(sel.skipped[0].reason == "excluded by the filter entry '!tests/**'");

  // Everything excluded: the error says so.
  r.filter = {"dll", "!*"};
  CHECK(input_error(r).find("4 skipped") != std::string::npos);
  r.filter = {"!"};
  CHECK(input_error(r).find("files-folder-filter: '!' excludes nothing") != std::string::npos);
}
