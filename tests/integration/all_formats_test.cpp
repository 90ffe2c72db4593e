// Every format tsign signs, in one folder, through `tsign action` against the emulator (issue 11):
// one run signs PE images, an installer, a cabinet, a catalog, every script family and app
// packages, each judged by osslsigncode where it knows the format and by `tsign verify` for the
// Windows Script Host families; the summary counts each format. And the app-package rule that
// costs nothing to check: a Publisher that is not the certificate's subject is refused before a
// signature is requested, the certificate learnt from the service's free certificate-chain
// endpoint once per run.
#include <catch2/catch.hpp>

#include <map>

#include <boost/json.hpp>

#include "emulator_process.hpp"
#include "support/catalog.hpp"

using namespace it;

namespace {

fs::path make_appx(const fs::path& out, const std::string& args) {
  const auto script = fs::path(TSIGN_FIXTURES_SCRIPT).parent_path() / "make_appx.py";
  auto r = sh("python3 " + quote(script) + " " + quote(out) + " " + args);
  INFO(r.out);
  REQUIRE(r.code == 0);
  return out;
}

// The subject of the emulator's signing certificate, as a package's Publisher names it.
std::string emulator_publisher(const Emulator& emu) {
  return "CN=tsign Emulator Publisher (" + emu.var("TSIGN_EMULATOR_ACCOUNT") + "/" +
         emu.var("TSIGN_EMULATOR_PROFILE") + "), O=tsign emulator";
}

// The report's format of each file, by file name.
std::map<std::string, std::string> formats_in_report(const fs::path& report) {
  std::map<std::string, std::string> out;
  auto v = boost::json::parse(read_file(report));
  for (const auto& f : v.at("files").as_array()) {
    const auto& o = f.as_object();
    out[fs::path(std::string(o.at("path").as_string())).filename().string()] =
        std::string(o.at("format").as_string());
  }
  return out;
}

}  // namespace

TEST_CASE(
    "tsign action through the emulator signs a folder of every format in one run, and the "
    "summary counts each format",
    "[integration][cloud][formats]") {
  TempDir d;
  Emulator emu(d.path / "emu");
  const auto bin = d.path / "bin";
  // File name -> the format the report must give it.
  std::map<std::string, std::string> expected;
  for (auto [name, format] : {std::pair{"pe64.exe", "pe"},
                              {"pe32.dll", "pe"},
                              {"msi.msi", "msi"},
                              {"cab-plain.cab", "cab"}})
    d.copy(name, std::string("bin/") + name), expected[name] = format;
  tsign::test::write_all(bin / "drivers.cat", tsign::test::make_catalog());
  expected["drivers.cat"] = "cat";
  const std::map<std::string, std::pair<std::string, std::string>> scripts{
      {"install.ps1", {"Write-Host 'installing'\r\n", "powershell"}},
      {"Tools.psm1", {"function Get-Tool { 'tool' }\r\n", "powershell"}},
      {"app.types.ps1xml", {"<?xml version=\"1.0\"?>\r\n<Types></Types>\r\n", "powershell"}},
      {"schema.mof", {"#pragma namespace(\"\\\\\\\\.\\\\root\\\\cimv2\")\r\n", "mof"}},
      {"run.js", {"WScript.Echo(\"hi\");\r\n", "js"}},
      {"run.vbs", {"WScript.Echo \"hi\"\r\n", "vbs"}},
      {"job.wsf", {"<job><script language=\"VBScript\">WScript.Echo 1</script></job>\r\n", "wsf"}},
  };
  fs::create_directories(bin / "tools");
  for (const auto& [name, s] : scripts) {
    write_file(bin / "tools" / name, s.first);
    expected[name] = s.second;
  }
  const std::string publisher = "--publisher " + quote(emulator_publisher(emu));
  make_appx(bin / "app.msix", publisher);
  make_appx(bin / "suite.msixbundle", "--bundle " + publisher);
  expected["app.msix"] = "appx";
  expected["suite.msixbundle"] = "appxbundle";
  write_file(bin / "notes.txt", "nobody signs text");

  auto r = sh(emu.action_env(bin, "INPUT_FILES_FOLDER_RECURSE=true") + "RUNNER_TEMP=" + d.q() +
              " GITHUB_OUTPUT=" + d.q("out") + " GITHUB_STEP_SUMMARY=" + d.q("summary.md") + " " +
              tsign_cmd() + " action");
  INFO(r.out);
  REQUIRE(r.code == 0);
  CHECK(formats_in_report(d.path / "tsign-report.json") == expected);
  CHECK(emu.signatures_issued() == static_cast<int>(expected.size()));
  CHECK(emu.count("certchain") == 1);  // the app packages' Publisher check, once per run

  // The judges: osslsigncode for every format it knows, `tsign verify` for all.
  const std::string roots = " --ca " + quote(emu.var("TSIGN_EMULATOR_CODESIGN_ROOT")) +
                            " --tsa-ca " + quote(emu.var("TSIGN_EMULATOR_TSA_ROOT")) + " ";
  for (const auto& [name, format] : expected) {
    const auto file = (format == "pe" || format == "msi" || format == "cab" || format == "cat" ||
                       format == "appx" || format == "appxbundle")
                          ? bin / name
                          : bin / "tools" / name;
    INFO(file);
    if (format != "js" && format != "vbs" && format != "wsf") {
      auto v = emu.verify(file);
      INFO(v.out);
      CHECK(v.code == 0);
      CHECK(v.out.find("Timestamp") != std::string::npos);
    }
    auto t = run_tsign("verify" + roots + quote(file));
    INFO(t.out);
    CHECK(t.code == 0);
  }

  auto summary = read_file(d.path / "summary.md");
  INFO(summary);
  for (auto [format, n] : {std::pair{"appx", 1},
                           {"appxbundle", 1},
                           {"cab", 1},
                           {"cat", 1},
                           {"js", 1},
                           {"mof", 1},
                           {"msi", 1},
                           {"pe", 2},
                           {"powershell", 3},
                           {"vbs", 1},
                           {"wsf", 1}})
    CHECK(summary.find("| " + std::string(format) + " | " + std::to_string(n) + " | 0 | 0 |") !=
          std::string::npos);
}

TEST_CASE(
    "an app package whose Publisher is not the service's certificate subject is refused "
    "before a signature is requested for it",
    "[integration][cloud][formats]") {
  TempDir d;
  Emulator emu(d.path / "emu");
  const auto bin = d.path / "bin";
  d.copy("pe64.exe", "bin/app.exe");
  make_appx(bin / "a.msix", "--publisher " + quote("CN=Contoso, O=Contoso, C=US"));
  make_appx(bin / "b.appx", "--publisher " + quote("CN=Fabrikam"));
  const auto a_before = read_file(bin / "a.msix");
  auto r = sh(emu.action_env(bin, "") + "RUNNER_TEMP=" + d.q() + " " + tsign_cmd() + " action");
  INFO(r.out);
  CHECK(r.code == 1);
  CHECK(r.out.find("1 signed, 2 failed") != std::string::npos);
  CHECK(r.out.find("a.msix::the package's Publisher \"CN=Contoso, O=Contoso, C=US\"") !=
        std::string::npos);
  CHECK(r.out.find("does not match the signing certificate's subject") != std::string::npos);
  CHECK(r.out.find("tsign Emulator Publisher") != std::string::npos);
  CHECK(read_file(bin / "a.msix") == a_before);
  CHECK(emu.signatures_issued() == 1);  // the PE's only: nothing was paid for either package
  CHECK(emu.count("certchain") == 1);   // learnt once, for free, for both packages
}
