// The format registry: content detection, not extensions, picks the format; what signtool signs
// and tsign does not yet is named, never passed over.
#include <catch2/catch.hpp>

#include "common/error.hpp"
#include "formats/format.hpp"
#include "support/fixtures.hpp"

namespace fs = std::filesystem;
using tsign::test::fixture;

TEST_CASE("the registry picks PE by content, whatever the extension", "[registry]") {
  tsign::test::TempDir tmp("registry");
  fs::copy_file(fixture("pe32.dll"), tmp / "library.bin");
  CHECK(tsign::formats::is_supported(tmp / "library.bin"));
  CHECK(tsign::formats::open(tmp / "library.bin")->format_name() == "pe");
}

TEST_CASE("the registry refuses what no format recognises", "[registry]") {
  tsign::test::TempDir tmp("registry");
  const auto text = tmp / "notes.exe";
  tsign::test::write_all(text, {'j', 'u', 's', 't', ' ', 't', 'e', 'x', 't'});
  CHECK_FALSE(tsign::formats::is_supported(text));
  CHECK_FALSE(tsign::formats::is_supported(fixture("root.pem")));
  CHECK_FALSE(tsign::formats::is_supported(tmp / "missing.exe"));
  CHECK_FALSE(tsign::formats::is_supported(tmp.path()));  // a directory

  std::string message;
  try {
    tsign::formats::open(text);
  } catch (const tsign::FileError& e) {
    message = e.what();
  }
  CHECK(message == text.string() +
                       ": not a supported file format (tsign signs "
                       "PE/CAB/MSI/CAT/APPX/PowerShell/PowerShell XML/MOF/JScript/VBScript/WSF)");
  CHECK_THROWS_AS(tsign::formats::open(tmp / "missing.exe"), tsign::FileError);
}

TEST_CASE("a malformed PE is still recognised, so it fails loudly instead of being skipped",
          "[registry]") {
  tsign::test::TempDir tmp("registry");
  auto b = tsign::test::read_all(fixture("pe64-signed.exe"));
  b.insert(b.end(), 8, 0);  // certificate table no longer at the end
  tsign::test::write_all(tmp / "bad.exe", b);
  CHECK(tsign::formats::is_supported(tmp / "bad.exe"));
  CHECK_THROWS_AS(tsign::formats::open(tmp / "bad.exe"), tsign::FileError);
}

TEST_CASE("scripts are chosen by name, app packages by content or name: nothing is left not yet",
          "[registry]") {
  tsign::test::TempDir tmp("registry");
  // Scripts are chosen by extension (any case).
  const auto script = tmp / "Install.PS1";
  tsign::test::write_all(script, {'W', 'r', 'i', 't', 'e', '-', 'H', 'o', 's', 't'});
  CHECK(tsign::formats::is_supported(script));
  CHECK(tsign::formats::open(script)->format_name() == "powershell");
  CHECK(tsign::formats::unsupported_kind(script).empty());
  // Since issue 11 nothing signtool signs is left "not yet": app packages are chosen by content,
  // and a file only named like one is opened as one (and refused with the reason).
  const auto app = tmp / "App.appx";
  tsign::test::write_all(app, {'P', 'K', 3, 4});
  CHECK(tsign::formats::unsupported_kind(tmp / "app.msixbundle").empty());
  CHECK(tsign::formats::unsupported_kind(tmp / "notes.txt").empty());
  CHECK(tsign::formats::unsupported_kind(tmp / "appx").empty());  // a name, not an extension

  std::string message;
  try {
    tsign::formats::open(app);
  } catch (const tsign::FileError& e) {
    message = e.what();
  }
  CHECK(message.rfind(app.string() + ": ", 0) == 0);
  CHECK(message.find("not a supported file format") == std::string::npos);
}

TEST_CASE("recognised_format names the kind of a file open refuses as malformed", "[registry]") {
  tsign::test::TempDir tmp("registry");
  // A truncated PE: open refuses it, but it is a PE (the summary counts it as one).
  auto pe = tsign::test::read_all(fixture("pe64.dll"));
  pe.resize(700);
  tsign::test::write_all(tmp / "broken.dll", pe);
  CHECK_THROWS_AS(tsign::formats::open(tmp / "broken.dll"), tsign::FileError);
  CHECK(tsign::formats::recognised_format(tmp / "broken.dll") == "pe");
  // A script in an encoding tsign refuses: chosen by its extension.
  tsign::test::write_all(tmp / "be.ps1", {0xfe, 0xff, 0x00, 'W'});
  CHECK_THROWS_AS(tsign::formats::open(tmp / "be.ps1"), tsign::FileError);
  CHECK(tsign::formats::recognised_format(tmp / "be.ps1") == "powershell");
  CHECK(tsign::formats::recognised_format(fixture("msi.msi")) == "msi");
  // Nothing to name: unknown content, a missing file, a directory.
  tsign::test::write_all(tmp / "notes.exe", {'t', 'e', 'x', 't'});
  CHECK(tsign::formats::recognised_format(tmp / "notes.exe").empty());
  CHECK(tsign::formats::recognised_format(tmp / "missing.exe").empty());
  CHECK(tsign::formats::recognised_format(tmp.path()).empty());
}
