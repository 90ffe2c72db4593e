// GitHub runner conventions: escaping of workflow commands and Markdown, GITHUB_OUTPUT syntax,
// and the job summary's 1 MiB bound.
#include <catch2/catch.hpp>

#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <sstream>

#include "engine/engine.hpp"
#include "gha/workflow.hpp"

using namespace tsign;
using engine::FileResult;
using engine::RunResult;
using engine::Status;

namespace {
RunResult run_of(std::size_t n, const std::string& name_prefix = "bin/file") {
  RunResult r;
  for (std::size_t i = 0; i < n; ++i) {
    FileResult f;
    f.path = name_prefix + std::to_string(i) + ".dll";
    f.status = i % 10 == 3 ? Status::failed : Status::signed_ok;
    if (f.status == Status::failed) f.error = "the service said no (HTTP 503)";
    f.bytes = 1000 + i;
    r.files.push_back(f);
  }
  return r;
}
}  // namespace

TEST_CASE("workflow command escaping", "[gha]") {
  CHECK(gha::escape_data("50% done\r\nnext") == "50%25 done%0D%0Anext");
  CHECK(gha::escape_property("C:\\a,b%\n") == "C%3A\\a%2Cb%25%0A");
}

TEST_CASE("Markdown escaping keeps tables intact", "[gha]") {
  auto e = gha::escape_markdown("a|b<script>*x*_y_`z`\n[l](u)");
  CHECK(e.find("\\|") != std::string::npos);
  CHECK(e.find('|') == e.find("\\|") + 1);
  CHECK(e.find("<script>") == std::string::npos);
  CHECK(e.find('\n') == std::string::npos);
  CHECK(e.find("\\*x\\*") != std::string::npos);
}

TEST_CASE("outputs: counts and a multi-line list with a delimiter no file name contains", "[gha]") {
  auto r = run_of(4);
  r.files[0].path = "weird\nname%:,|<.dll";
  auto text = gha::outputs_text(r, "/tmp/report.json");
  CHECK(text.find("signed-count=3\n") != std::string::npos);
  CHECK(text.find("failed-count=1\n") != std::string::npos);
  CHECK(text.find("skipped-count=0\n") != std::string::npos);
  CHECK(text.find("report=/tmp/report.json\n") != std::string::npos);
  auto open = text.find("signed-files<<");
  REQUIRE(open != std::string::npos);
  auto eol = text.find('\n', open);
  std::string delim = text.substr(open + 14, eol - open - 14);
  CHECK(delim.size() >= 16);
  auto close = text.find("\n" + delim + "\n", eol);
  REQUIRE(close != std::string::npos);
  std::string body = text.substr(eol + 1, close - eol);
  CHECK(body.find("weird\nname%:,|<.dll\n") != std::string::npos);
  CHECK(body.find("file3.dll") == std::string::npos);  // failed: not listed
  // Two runs never share a delimiter.
  CHECK(gha::outputs_text(r, "") != gha::outputs_text(r, ""));
}

TEST_CASE("summary: totals, certificate, a row per file, failures with reasons", "[gha]") {
  auto r = run_of(5);
  authenticode::SignatureReport cert;
  cert.subject = "CN=Contoso";
  cert.sha256_thumbprint = "ab12";
  cert.not_before = "2026-11-26T00:00:00Z";
  cert.not_after = "2026-11-29T00:00:00Z";
  r.certificate = cert;
  engine::ReportContext ctx{"https://eus.codesigning.azure.net/", "acct", "prof",
                            "http://timestamp.acs.microsoft.com", "corr-1"};
  auto md = gha::summary_markdown(r, ctx);
  CHECK(md.find("4 signed, 1 failed, 0 skipped") != std::string::npos);
  CHECK(md.find("CN=Contoso") != std::string::npos);
  CHECK(md.find("ab12") != std::string::npos);
  CHECK(md.find("2026-11-29T00:00:00Z") != std::string::npos);
  CHECK(md.find("corr-1") != std::string::npos);
  CHECK(md.find("http://timestamp.acs.microsoft.com") != std::string::npos);
  for (int i = 0; i < 5; ++i)
    CHECK(md.find("file" + std::to_string(i) + ".dll") != std::string::npos);
  CHECK(md.find("### Failures") != std::string::npos);
  CHECK(md.find("HTTP 503") != std::string::npos);
  CHECK(md.find("| Signatures requested | 0 |") != std::string::npos);
  r.signatures_requested = 4;
  r.max_signatures = 4;
  r.budget_reached = true;
  md = gha::summary_markdown(r, ctx);
  CHECK(md.find("| Signatures requested | 4 of at most 4 (max-signatures) |") != std::string::npos);
  CHECK(md.find("signature budget was reached") != std::string::npos);
}

TEST_CASE("subject checksums: the signed files' SHA-256 in sha256sum's format", "[gha]") {
  auto r = run_of(4);  // file3 failed: not listed
  for (auto& f : r.files) f.sha256_after = std::string(64, 'a');
  r.files[1].path = "dir\\odd\nname.dll";  // escaped as coreutils does
  auto text = gha::checksums_text(r);
  CHECK(text == std::string(64, 'a') + "  bin/file0.dll\n" + "\\" + std::string(64, 'a') +
                    "  dir\\\\odd\\nname.dll\n" + std::string(64, 'a') + "  bin/file2.dll\n");
}

TEST_CASE("summary: counts by format, and each file's format in the table", "[gha]") {
  auto r = run_of(5);  // file3 failed
  const char* formats[] = {"pe", "msi", "pe", "msi", "cab"};
  for (int i = 0; i < 5; ++i) r.files[i].format = formats[i];
  FileResult script;
  script.path = "tools/x.ps1";
  script.status = Status::skipped;
  script.error = "skipped: a PowerShell script";
  r.files.push_back(script);  // no format: counted as not recognised, last
  auto md = gha::summary_markdown(r, {});
  // Formats in the order the registry lists them would need the registry; by name is stable.
  CHECK(md.find("| Format | Signed | Failed | Skipped |\n|---|---:|---:|---:|\n"
                "| cab | 1 | 0 | 0 |\n| msi | 1 | 1 | 0 |\n| pe | 2 | 0 | 0 |\n"
                "| not recognised | 0 | 0 | 1 |\n") != std::string::npos);
  CHECK(md.find("| Folder | Signed | Failed | Skipped |") != std::string::npos);
  CHECK(md.find("| bin | 4 | 1 | 0 |\n| tools | 0 | 0 | 1 |") != std::string::npos);
  CHECK(md.find("| File | Format | Size | Result | Time |") != std::string::npos);
  CHECK(md.find("| bin/file1.dll | msi | ") != std::string::npos);
  CHECK(md.find("| tools/x.ps1 | – | ") != std::string::npos);
}

TEST_CASE("summary: failures first, names relative to the workspace, a long table folded",
          "[gha]") {
  auto r = run_of(300, "/home/runner/work/app/app/out/bin/lib");
  r.files[7].path = "/elsewhere/x.dll";  // outside the workspace: as given
  engine::ReportContext ctx;
  ctx.base = "/home/runner/work/app/app";
  auto md = gha::summary_markdown(r, ctx);
  CHECK(md.find("/home/runner") == std::string::npos);
  CHECK(md.find("`out/bin/lib3.dll`: the service said no") != std::string::npos);
  CHECK(md.find("| out/bin/lib0.dll | – |") != std::string::npos);
  CHECK(md.find("| /elsewhere/x.dll |") != std::string::npos);
  // The failures come before the run's details, the per-file table after everything, folded.
  CHECK(md.find("### Failures") < md.find("| Duration |"));
  CHECK(md.find("| Duration |") < md.find("<details><summary>All 300 files</summary>"));
  CHECK(md.find("</details>") != std::string::npos);
  // A short run's table stays open.
  CHECK(gha::summary_markdown(run_of(5), {}).find("<details>") == std::string::npos);
}

TEST_CASE("summary of 10 000 files stays under 1 MiB and says how many rows it left out", "[gha]") {
  auto r = run_of(10000, "a/rather/long/path/to/some/build/output/folder/of/the/project/lib");
  auto md = gha::summary_markdown(r, {});
  CHECK(md.size() < 1024 * 1024);
  CHECK(md.find("…and ") != std::string::npos);
  CHECK(md.find("more (see the JSON report)") != std::string::npos);
  CHECK(md.find("9000 signed, 1000 failed") != std::string::npos);
}

TEST_CASE("a file name cannot break the summary table", "[gha]") {
  auto r = run_of(1, "x|y\n<b>");
  auto md = gha::summary_markdown(r, {});
  CHECK(md.find("x\\|y<br>&lt;b&gt;0.dll") != std::string::npos);
}

TEST_CASE("summary: the Failures list shows names as they are, inside code spans", "[gha]") {
  RunResult r;
  for (std::string name : {"bin/my_tool*[v2].dll", "bin/a`b.dll", "`edge`.dll", "x\ny.dll"}) {
    FileResult f;
    f.path = name;
    f.status = Status::failed;
    f.error = "not a supported file format (PE)";
    f.bytes = 3000;
    r.files.push_back(f);
  }
  auto md = gha::summary_markdown(r, {});
  INFO(md);
  // Backslash escapes are not processed inside a code span: the name goes in unescaped, fenced
  // by more backticks than it contains.
  CHECK(md.find("- `bin/my_tool*[v2].dll`: not a supported file format (PE)\n") !=
        std::string::npos);
  CHECK(md.find("- ``bin/a`b.dll``: ") != std::string::npos);
  CHECK(md.find("- `` `edge`.dll ``: ") != std::string::npos);
  CHECK(md.find("- `x\u2424y.dll`: ") != std::string::npos);
  CHECK(md.find("| 2.9 KiB | failed |") != std::string::npos);
}

TEST_CASE("summary: an interruption, a link's target, a skipped link and a lost report", "[gha]") {
  RunResult r = run_of(2);
  r.files[0].target = "/real/file0.dll";
  FileResult skipped;
  skipped.path = "bin/out_link.dll";
  skipped.target = "/elsewhere/x.dll";
  skipped.status = Status::skipped;
  skipped.error = "a symbolic link to '/elsewhere/x.dll', outside the folder";
  r.files.push_back(skipped);
  r.interrupted_signal = SIGINT;
  engine::ReportContext ctx;
  ctx.report_error = "the report could not be written to '/x/r.json': no such folder";
  auto md = gha::summary_markdown(r, ctx);
  INFO(md);
  CHECK(md.find("**Interrupted** by SIGINT") != std::string::npos);
  CHECK(md.find("| Exit code | 130 |") != std::string::npos);
  CHECK(md.find("deadline") == std::string::npos);
  CHECK(md.find("| bin/file0.dll → /real/file0.dll |") != std::string::npos);
  CHECK(md.find("### Skipped") != std::string::npos);
  CHECK(
      md.find("- `bin/out_link.dll`: a symbolic link to '/elsewhere/x.dll', outside the folder") !=
      std::string::npos);
  CHECK(md.find("could not be written to '/x/r.json'") != std::string::npos);
}

TEST_CASE("exit codes: the most severe wins (2, 3, then 128+N, 4, 1)", "[gha][exit]") {
  RunResult r = run_of(4);  // file3 failed
  CHECK(r.exit_code() == ExitCode::file_failed);
  r.deadline_passed = true;
  CHECK(r.exit_code() == ExitCode::deadline);
  r.interrupted_signal = SIGTERM;
  CHECK(static_cast<int>(r.exit_code()) == 143);
  r.interrupted_signal = SIGINT;
  CHECK(static_cast<int>(r.exit_code()) == 130);
  r.fatal_code = ExitCode::auth;
  CHECK(r.exit_code() == ExitCode::auth);
}

// --- the summary as GitHub renders it ---------------------------------------------------------
// GitHub renders job summaries with cmark-gfm (GitHub Flavored Markdown, tables extension, raw
// HTML such as <details> allowed). These cases render with the same engine (Debian's cmark-gfm,
// installed by scripts/setup) and check what a reader sees, not the Markdown source:
// scripts/render-summary takes screenshots of the same renderings for a person to look at.
namespace {
std::string render_gfm(const std::string& md) {
  namespace fs = std::filesystem;
  std::random_device rd;
  fs::path dir = fs::temp_directory_path() / ("tsign-gfm-" + std::to_string(rd()));
  fs::create_directories(dir);
  { std::ofstream(dir / "in.md", std::ios::binary) << md; }
  std::string cmd = "cmark-gfm --unsafe -e table -e strikethrough -e autolink '" +
                    (dir / "in.md").string() + "' > '" + (dir / "out.html").string() + "'";
  int rc = std::system(cmd.c_str());
  std::ifstream in(dir / "out.html", std::ios::binary);
  std::string html((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  fs::remove_all(dir);
  if (rc != 0) FAIL("cmark-gfm failed or is not installed (scripts/setup installs it): " << cmd);
  return html;
}
std::size_t count(const std::string& s, const std::string& what) {
  std::size_t n = 0;
  for (auto p = s.find(what); p != std::string::npos; p = s.find(what, p + 1)) ++n;
  return n;
}
}  // namespace

TEST_CASE("rendered by GitHub's Markdown engine: every table is a table, the long one folded",
          "[gha][render]") {
  auto r = run_of(10000, "/home/runner/work/app/app/out/bin/lib");
  for (std::size_t i = 0; i < r.files.size(); ++i) {
    if (i % 2)
      r.files[i].path = "/home/runner/work/app/app/out/plugins/p" + std::to_string(i) + ".dll";
    r.files[i].format = "pe";
  }
  engine::ReportContext ctx;
  ctx.base = "/home/runner/work/app/app";
  auto md = gha::summary_markdown(r, ctx);
  auto html = render_gfm(md);
  INFO(md.substr(0, 3000));
  // As many HTML tables as Markdown tables: none fell apart into paragraphs of pipes.
  std::size_t md_tables = 0;
  std::istringstream lines(md);
  for (std::string line, prev; std::getline(lines, line); prev = line)
    if (line.rfind("|---", 0) == 0 || line.rfind("| ---", 0) == 0 || line.rfind("|:--", 0) == 0)
      ++md_tables;
  CHECK(md_tables >= 3);
  CHECK(count(html, "<table>") == md_tables);
  CHECK(html.find("| ") == std::string::npos);  // no table row left as text
  // The per-file table is inside <details>, after the failures and the counts.
  auto details = html.find("<details><summary>All 10000 files</summary>");
  REQUIRE(details != std::string::npos);
  CHECK(html.find("<table>", details) != std::string::npos);
  CHECK(html.find("Failures") < details);
  CHECK(html.find("<td>out/bin</td>") < details);  // the folder counts, above the fold
  CHECK(html.find("<td>out/bin/lib0.dll</td>") > details);
  // 1000 failures: the first few listed, the rest folded, so the counts stay near the top.
  auto more = html.find("<details><summary>980 more failures</summary>");
  REQUIRE(more != std::string::npos);
  CHECK(count(html.substr(0, more), "<li>") == 20);
  CHECK(more < html.find("<td>out/bin</td>"));
  CHECK(html.find("/home/runner") == std::string::npos);
  CHECK(md.size() < 1024 * 1024);
}

TEST_CASE("rendered by GitHub's Markdown engine: hostile names show as they are", "[gha][render]") {
  RunResult r;
  for (std::string name : {"bin/x|y.dll", "bin/<img src=x onerror=alert(1)>.dll",
                           "bin/my_tool*[v2](u).dll", "bin/a`b.dll", "bin/**bold**.dll"}) {
    FileResult ok;
    ok.path = name;
    ok.status = Status::signed_ok;
    ok.bytes = 2048;
    r.files.push_back(ok);
    FileResult bad = ok;
    bad.path = name + ".bad.dll";
    bad.status = Status::failed;
    bad.error = "not a supported file format (PE)";
    r.files.push_back(bad);
  }
  auto html = render_gfm(gha::summary_markdown(r, {}));
  INFO(html);
  CHECK(html.find("<img") == std::string::npos);  // no markup from a name reaches the page
  CHECK(html.find("<strong>bold") == std::string::npos);
  CHECK(html.find("<em>") == std::string::npos);
  CHECK(html.find("<a href") == std::string::npos);
  // In table cells (escaped) and in the failure list (code spans) the text is the name.
  CHECK(html.find("<td>bin/x|y.dll</td>") != std::string::npos);
  CHECK(html.find("<td>bin/my_tool*[v2](u).dll</td>") != std::string::npos);
  CHECK(html.find("<td>bin/**bold**.dll</td>") != std::string::npos);
  CHECK(html.find("<td>bin/&lt;img src=x onerror=alert(1)&gt;.dll</td>") != std::string::npos);
  CHECK(html.find("<code>bin/x|y.dll.bad.dll</code>") != std::string::npos);
  CHECK(html.find("<code>bin/a`b.dll.bad.dll</code>") != std::string::npos);
  CHECK(html.find("<code>bin/&lt;img src=x onerror=alert(1)&gt;.dll.bad.dll</code>") !=
        std::string::npos);
}

TEST_CASE("summary counts add up to the headline, and a folder with failures is never cut",
          "[gha]") {
  RunResult r;
  // 30 folders of 5 signed files, then one small folder with a failure; two files whose format
  // was never recognised (they failed before it could be).
  for (int d = 0; d < 30; ++d)
    for (int i = 0; i < 5; ++i) {
      FileResult f;
      f.path = "big" + std::to_string(d) + "/f" + std::to_string(i) + ".dll";
      f.format = "pe";
      f.status = Status::signed_ok;
      r.files.push_back(f);
    }
  FileResult bad;
  bad.path = "small/broken.dll";
  bad.status = Status::failed;
  bad.error = "the section table ends outside the file";
  r.files.push_back(bad);
  bad.path = "small/cut.msi";
  r.files.push_back(bad);
  auto md = gha::summary_markdown(r, {});
  INFO(md);
  CHECK(md.find("### Failures (2)") != std::string::npos);
  // Every file is counted in the Format table, recognised or not.
  CHECK(md.find("| pe | 150 | 0 | 0 |") != std::string::npos);
  CHECK(md.find("| not recognised | 0 | 2 | 0 |") != std::string::npos);
  // 31 folders, 20 rows: the folder with the failures is a row of its own, first.
  auto folders = md.find("| Folder | Signed | Failed | Skipped |\n|---|---:|---:|---:|\n");
  REQUIRE(folders != std::string::npos);
  const std::string header = "| Folder | Signed | Failed | Skipped |\n|---|---:|---:|---:|\n";
  CHECK(md.compare(folders + header.size(), 22, "| small | 0 | 2 | 0 |\n") == 0);
  CHECK(md.find("| …11 more | 55 | 0 | 0 |") != std::string::npos);
  // The run's table has a header a reader can read.
  CHECK(md.find("| Run | |\n|---|---|\n") != std::string::npos);
}
