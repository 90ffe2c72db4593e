// Scripts through the real binary with a local key: every family in UTF-8, UTF-8 with BOM and
// UTF-16LE signed with SHA-256/384/512, judged by osslsigncode (PowerShell family and MOF) and
// by `tsign verify` (all); a one-character edit rejected by both; re-signing replaces the block;
// append-signature and malformed scripts refused by name, the files left as they were.
#include <catch2/catch.hpp>

#include "emulator_process.hpp"
#include "harness.hpp"

using namespace it;
using Bytes = std::vector<std::uint8_t>;

namespace {

bool has(const std::string& text, const std::string& what) {
  return text.find(what) != std::string::npos;
}

std::size_t count(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

std::string utf8_bom(const std::string& s) {
  return "\xEF\xBB\xBF" + s;
}

// UTF-16LE with BOM of ASCII text.
std::string utf16(const std::string& ascii) {
  std::string out = "\xFF\xFE";
  for (char c : ascii) {
    out += c;
    out += '\0';
  }
  return out;
}

struct Script {
  std::string name;
  std::string bytes;
  bool ossl;  // osslsigncode 2.9 knows the format
};

std::vector<Script> scripts() {
  return {
      {"a.ps1", "Write-Host 'caf\xC3\xA9'\r\nGet-Date\r\n", true},
      {"b.psm1", utf8_bom("function Get-One { 1 }\n"), true},
      {"c.psd1", utf16("@{ ModuleVersion = '1.0' }\r\n"), true},
      {"d.ps1xml", utf8_bom("<Types>\r\n  <Type><Name>Foo.caf\xC3\xA9</Name></Type>\r\n</Types>"),
       true},
      {"e.psc1", "<PSConsoleFile ConsoleSchemaVersion=\"1.0\" />\r\n", true},
      {"f.cdxml", utf16("<PowerShellMetadata />\r\n"), true},
      {"g.mof", utf16("instance of Win32_Foo { Name = \"one\"; };\r\n"), true},
      {"h.js", "WScript.Echo(\"hello\");\n", false},
      {"i.vbs", utf16("WScript.Echo \"hello\"\r\n"), false},
      {"j.wsf",
       utf8_bom("<job id=\"one\">\r\n<script language=\"JScript\">WScript.Echo(\"caf\xC3\xA9\");"
                "</script>\r\n</job>\r\n"),
       false},
  };
}

// The file with its first 'o' of the text changed to 'O': one character.
std::string tampered(std::string b) {
  b[b.find('o')] = 'O';
  return b;
}

}  // namespace

TEST_CASE("sign every script family with a local key: osslsigncode and tsign verify agree",
          "[integration][local][script]") {
  for (std::string digest : {"SHA256", "SHA384", "SHA512"}) {
    TempDir d;
    std::string args;
    for (auto& s : scripts()) {
      write_file(d.path / s.name, s.bytes);
      args += " " + d.q(s.name);
    }
    auto r = run_tsign("sign " + local_key() + " --timestamp-rfc3161=none --file-digest " + digest +
                       args);
    INFO(r.out);
    REQUIRE(r.code == 0);
    CHECK(has(r.out, "10 signed, 0 failed"));
    for (auto& s : scripts()) {
      INFO(s.name << " " << digest);
      const std::string signed_bytes = read_file(d.path / s.name);
      // The body is kept byte for byte, the block follows it (a WSF's inside its job).
      if (s.name != "j.wsf") CHECK(signed_bytes.compare(0, s.bytes.size(), s.bytes) == 0);
      if (s.ossl) {
        auto v = ossl_verify(d.path / s.name);
        INFO(v.out);
        CHECK(v.code == 0);
        CHECK(has(v.out, "Number of verified signatures: 1"));
      }
      auto t = run_tsign("verify --ca " + fx("root.pem") + " " + d.q(s.name));
      INFO(t.out);
      CHECK(t.code == 0);
      CHECK(has(t.out, digest));

      write_file(d.path / ("tampered-" + s.name), tampered(signed_bytes));
      if (s.ossl) {
        auto vt = ossl_verify(d.path / ("tampered-" + s.name));
        INFO(vt.out);
        CHECK(vt.code != 0);
      }
      auto tt = run_tsign("verify --ca " + fx("root.pem") + " " + d.q("tampered-" + s.name));
      INFO(tt.out);
      CHECK(tt.code == 1);
      fs::remove(d.path / ("tampered-" + s.name));
    }
  }
}

TEST_CASE("re-signing a script replaces its block, and append-signature is refused untouched",
          "[integration][local][script]") {
  TempDir d;
  write_file(d.path / "a.ps1", "Write-Host one\r\n");
  write_file(d.path / "b.vbs", "WScript.Echo 1\r\n");
  auto r = run_tsign("sign " + local_key() + " --timestamp-rfc3161=none " + d.q("a.ps1") + " " +
                     d.q("b.vbs"));
  REQUIRE(r.code == 0);
  const std::string first_ps = read_file(d.path / "a.ps1");
  const std::string first_vbs = read_file(d.path / "b.vbs");

  r = run_tsign("sign " + local_key() + " --timestamp-rfc3161=none --file-digest SHA512 " +
                d.q("a.ps1") + " " + d.q("b.vbs"));
  INFO(r.out);
  REQUIRE(r.code == 0);
  const std::string ps = read_file(d.path / "a.ps1");
  CHECK(count(ps, "# SIG # Begin signature block") == 1);
  CHECK(count(ps, "# SIG # End signature block") == 1);
  CHECK(ps.rfind("Write-Host one\r\n\r\n# SIG # Begin signature block\r\n", 0) == 0);
  auto v = ossl_verify(d.path / "a.ps1");
  INFO(v.out);
  CHECK(v.code == 0);
  CHECK(has(v.out, "Number of verified signatures: 1"));
  CHECK(count(read_file(d.path / "b.vbs"), "'' SIG '' Begin signature block") == 1);
  auto t = run_tsign("verify --ca " + fx("root.pem") + " " + d.q("a.ps1") + " " + d.q("b.vbs"));
  INFO(t.out);
  CHECK(t.code == 0);
  CHECK(count(t.out, "SHA512") == 2);

  const std::string before_ps = read_file(d.path / "a.ps1");
  const std::string before_vbs = read_file(d.path / "b.vbs");
  r = run_tsign("sign " + local_key() + " --timestamp-rfc3161=none --append-signature " +
                d.q("a.ps1") + " " + d.q("b.vbs"));
  INFO(r.out);
  CHECK(r.code == 1);
  CHECK(has(r.out, "0 signed, 2 failed"));
  CHECK(has(r.out, "a.ps1: a script holds one signature"));
  CHECK(has(r.out, "b.vbs: a script holds one signature"));
  CHECK(has(r.out, "Sign it without append-signature: the new signature then replaces"));
  CHECK(read_file(d.path / "a.ps1") == before_ps);
  CHECK(read_file(d.path / "b.vbs") == before_vbs);
  CHECK(listing(d.path) == std::vector<std::string>{"a.ps1", "b.vbs"});
}

TEST_CASE("malformed and unsupported scripts are refused: exit 1, named, left as they were",
          "[integration][local][script][bad-input]") {
  TempDir d;
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"half.ps1", "Write-Host 1\r\n\r\n# SIG # Begin signature block\r\n# MIIB\r\n"},
      {"end-only.js", "WScript.Echo(1);\r\n// SIG // End signature block\r\n"},
      {"garbage.vbs",
       "WScript.Echo 1\r\n\r\n'' SIG '' Begin signature block\r\n'' SIG '' not*base64\r\n"
       "'' SIG '' End signature block\r\n"},
      {"be.ps1", std::string("\xFE\xFF\0W\0r", 6)},
      {"nul.mof", std::string("class A\0{};", 11)},
      {"latin1.ps1", "Write-Host 'caf\xE9'\r\n"},
      {"nojob.wsf", "<package></package>\r\n"},
  };
  std::string args;
  for (auto& [name, bytes] : bad) {
    write_file(d.path / name, bytes);
    args += " " + d.q(name);
  }
  write_file(d.path / "good.ps1", "Write-Host ok\r\n");
  auto r = run_tsign("sign " + local_key() + " --timestamp-rfc3161=none " + args + " " +
                     d.q("good.ps1"));
  INFO(r.out);
  CHECK(r.code == 1);
  CHECK(has(r.out, "1 signed, 7 failed"));
  CHECK(has(r.out, "half.ps1: the signature block has its Begin line but no"));
  CHECK(has(r.out, "end-only.js: the script has a '// SIG // End signature block' line without"));
  CHECK(has(r.out, "garbage.vbs: a line of the signature block holds something other than base64"));
  CHECK(has(r.out, "be.ps1: the script is UTF-16 big-endian"));
  CHECK(has(r.out, "nul.mof: the text holds a NUL character"));
  CHECK(has(r.out, "latin1.ps1: the text is not valid UTF-8"));
  CHECK(has(r.out, "nojob.wsf: no </job> element"));
  for (auto& [name, bytes] : bad) {
    INFO(name);
    CHECK(read_file(d.path / name) == bytes);
  }
  CHECK(ossl_verify(d.path / "good.ps1").code == 0);
}

TEST_CASE("action mode through the emulator: scripts signed by the service and time-stamped",
          "[integration][cloud][script]") {
  TempDir d;
  Emulator emu(d.path / "emu");
  fs::create_directories(d.path / "bin");
  write_file(d.path / "bin/a.ps1", utf16("Write-Host 'one'\r\n"));
  write_file(d.path / "bin/b.mof", "class B {};\r\n");
  write_file(d.path / "bin/c.vbs", "WScript.Echo 1\r\n");
  write_file(d.path / "bin/d.js", utf8_bom("WScript.Echo(1);\n"));
  auto r = sh(emu.action_env(d.path / "bin") + tsign_cmd() + " action");
  INFO(r.out);
  REQUIRE(r.code == 0);
  CHECK(has(r.out, "4 signed, 0 failed"));
  for (const char* n : {"bin/a.ps1", "bin/b.mof"}) {
    INFO(n);
    auto v = emu.verify(d.path / n);
    INFO(v.out);
    CHECK(v.code == 0);
    CHECK(has(v.out, "Timestamp Server Signature verification: ok"));
  }
  auto t =
      run_tsign("verify --ca " + quote(emu.var("TSIGN_EMULATOR_CODESIGN_ROOT")) + " --tsa-ca " +
                quote(emu.var("TSIGN_EMULATOR_TSA_ROOT")) + " " + d.q("bin/a.ps1") + " " +
                d.q("bin/b.mof") + " " + d.q("bin/c.vbs") + " " + d.q("bin/d.js"));
  INFO(t.out);
  CHECK(t.code == 0);
  CHECK(count(t.out, "OK ") == 4);
  CHECK(emu.count("tsa") == 4);

  // append-signature: refused before a signature is requested, every script left as it was.
  const int signs = emu.count("sign");
  CHECK(signs == 4);
  const std::string before = read_file(d.path / "bin/c.vbs");
  r = sh(emu.action_env(d.path / "bin", "INPUT_APPEND_SIGNATURE=true") + tsign_cmd() + " action");
  INFO(r.out);
  CHECK(r.code == 1);
  CHECK(has(r.out, "0 signed, 4 failed"));
  CHECK(emu.count("sign") == signs);
  CHECK(read_file(d.path / "bin/c.vbs") == before);
}
