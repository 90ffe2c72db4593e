// Scripts: for every family, encoding and line-ending style, the digest and the signed file. The
// PowerShell family and MOF are judged by osslsigncode (the signed file tsign writes is byte for
// byte the one osslsigncode writes with the same signature); JScript, VBScript and WSF, which
// Debian's osslsigncode does not sign, against the Windows Script Host SIP's rule computed here
// independently (docs/formats.md, "Scripts"). Every malformed or unsupported script is refused
// with its name and the reason.
#include <catch2/catch.hpp>

#include <algorithm>
#include <fstream>
#include <string>

#include "common/digest.hpp"
#include "common/error.hpp"
#include "common/text.hpp"
#include "formats/format.hpp"
#include "formats/script.hpp"
#include "formats/spc_data.hpp"
#include "reference.hpp"
#include "support/fixtures.hpp"
#include "support/memory_output.hpp"

namespace fs = std::filesystem;
namespace reference = tsign::test::reference;
namespace script = tsign::formats::script;
using tsign::Bytes;
using tsign::DigestAlg;
using tsign::test::MemoryOutput;
using tsign::test::read_all;
using tsign::test::write_all;

namespace {

enum class Enc { utf8, utf8_bom, utf16le };

// UTF-8 to UTF-16 code units (the test's texts are valid).
std::u16string units_of(const std::string& utf8) {
  std::u16string out;
  for (std::size_t i = 0; i < utf8.size();) {
    const auto c = static_cast<unsigned char>(utf8[i]);
    std::uint32_t cp = 0;
    std::size_t n = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
    cp = n == 1 ? c : n == 2 ? (c & 0x1F) : n == 3 ? (c & 0x0F) : (c & 0x07);
    for (std::size_t k = 1; k < n; ++k) cp = (cp << 6) | (utf8[i + k] & 0x3F);
    if (cp >= 0x10000) {
      out.push_back(static_cast<char16_t>(0xD800 + ((cp - 0x10000) >> 10)));
      out.push_back(static_cast<char16_t>(0xDC00 + ((cp - 0x10000) & 0x3FF)));
    } else {
      out.push_back(static_cast<char16_t>(cp));
    }
    i += n;
  }
  return out;
}

Bytes le_bytes(const std::u16string& u) {
  Bytes b;
  for (char16_t c : u) {
    b.push_back(static_cast<std::uint8_t>(c));
    b.push_back(static_cast<std::uint8_t>(c >> 8));
  }
  return b;
}

Bytes encode(const std::string& utf8, Enc e) {
  switch (e) {
    case Enc::utf8:
      return Bytes(utf8.begin(), utf8.end());
    case Enc::utf8_bom: {
      Bytes b{0xEF, 0xBB, 0xBF};
      b.insert(b.end(), utf8.begin(), utf8.end());
      return b;
    }
    case Enc::utf16le: {
      Bytes b{0xFF, 0xFE};
      const Bytes t = le_bytes(units_of(utf8));
      b.insert(b.end(), t.begin(), t.end());
      return b;
    }
  }
  return {};
}

const char* enc_name(Enc e) {
  return e == Enc::utf8 ? "UTF-8" : e == Enc::utf8_bom ? "UTF-8 with BOM" : "UTF-16LE";
}

// A script body in a line-ending style, with trailing whitespace, an empty line, and (when
// `ascii` is false) non-ASCII text including a character outside the BMP.
std::string body(const std::string& eol, bool ascii, bool final_eol) {
  std::string s = std::string("line one   ") + eol + "\t tab and spaces \t" + eol + eol +
                  (ascii ? "plain ascii" : "caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80") + eol +
                  "last line";
  if (final_eol) s += eol;
  return s;
}

struct Case {
  std::string label;
  Bytes bytes;
  std::string text;  // the body as UTF-8, without BOM
  Enc enc;
};

// Every encoding × line-ending combination a family signs.
std::vector<Case> cases(const script::Style& s) {
  std::vector<Case> out;
  for (Enc e : {Enc::utf8, Enc::utf8_bom, Enc::utf16le})
    for (const char* eol : {"\r\n", "\n"})
      for (bool final_eol : {true, false}) {
        const bool ascii = e == Enc::utf8 && s.ascii_without_bom;
        std::string text = body(eol, ascii, final_eol);
        if (s.before_last_job)
          text = "<package>" + std::string(eol) + "<job id=\"a\">" + eol +
                 "<script language=" + "\"VBScript\">" + eol + text + eol + "</script>" + eol +
                 "</job>" + eol + "</package>" + (final_eol ? eol : "");
        out.push_back({std::string(enc_name(e)) + (eol[0] == '\r' ? ", CRLF" : ", LF") +
                           (final_eol ? "" : ", no final line end"),
                       encode(text, e), text, e});
      }
  return out;
}

std::string file_name(const script::Style& s) {
  return "in" + std::string(s.extensions.substr(0, s.extensions.find(' ')));
}

std::string parse_error(const Bytes& data, script::Family f) {
  try {
    script::parse(data, f, "in.script");
  } catch (const tsign::FileError& e) {
    return e.what();
  }
  return {};
}

// A PKCS#7 SignedData to embed (osslsigncode's signature of a small script).
const Bytes& some_signature() {
  static const Bytes der = [] {
    tsign::test::TempDir dir("script-sig");
    std::string text = "Write-Host 1\r\n";
    write_all(dir.path() / "s.ps1", Bytes(text.begin(), text.end()));
    reference::sign(dir.path() / "s.ps1", dir.path() / "signed.ps1", "sha256");
    return reference::extract_signature(dir.path() / "signed.ps1", dir.path() / "sig.der");
  }();
  return der;
}

Bytes sign_in_memory(const fs::path& p, const Bytes& der, DigestAlg alg = DigestAlg::sha256) {
  auto f = tsign::formats::open(p);
  MemoryOutput out;
  const Bytes written_digest = f->write_signed(der, out, alg);
  CHECK(written_digest == f->digest(alg));
  return out.bytes;
}

struct Dir {
  tsign::test::TempDir tmp{"script"};
  fs::path path = tmp.path();
};

}  // namespace

TEST_CASE("PowerShell and MOF scripts: the signed file is byte for byte osslsigncode's",
          "[script]") {
  Dir d;
  for (const script::Style& s : script::kStyles) {
    if (s.wsh) continue;
    for (const Case& c : cases(s)) {
      INFO(s.extensions << ": " << c.label);
      const fs::path in = d.path / file_name(s);
      const fs::path ossl = d.path / ("ossl" + in.extension().string());
      write_all(in, c.bytes);
      const char* alg = c.enc == Enc::utf16le ? "sha512" : c.enc == Enc::utf8 ? "sha256" : "sha384";
      const DigestAlg dalg = c.enc == Enc::utf16le ? DigestAlg::sha512
                             : c.enc == Enc::utf8  ? DigestAlg::sha256
                                                   : DigestAlg::sha384;
      reference::sign(in, ossl, alg);
      const Bytes der = reference::extract_signature(ossl, d.path / "sig.der");

      auto unsigned_file = tsign::formats::open(in);
      CHECK(unsigned_file->format_name() == s.name);
      CHECK_FALSE(unsigned_file->existing_signature());
      auto ossl_file = tsign::formats::open(ossl);
      REQUIRE(ossl_file->existing_signature());
      CHECK(*ossl_file->existing_signature() == der);
      // The same digest with or without the block, and the same file as osslsigncode's.
      CHECK(unsigned_file->digest(dalg) == ossl_file->digest(dalg));
      CHECK(sign_in_memory(in, der, dalg) == read_all(ossl));
      // Re-signing the signed file replaces its block: the same bytes again.
      CHECK(sign_in_memory(ossl, der, dalg) == read_all(ossl));
      // osslsigncode's verify recomputes the digest it signed: the PowerShell SIP's digest,
      // which tsign computes too.
      auto v = reference::verify(ossl);
      INFO(v.output);
      CHECK(reference::last_hex(v.output, "Calculated message digest") ==
            tsign::ascii_upper(tsign::to_hex(unsigned_file->digest(dalg))));
    }
  }
}

TEST_CASE("JScript, VBScript and WSF: the Windows Script Host SIP's digest and block", "[script]") {
  Dir d;
  const Bytes& der = some_signature();
  for (const script::Style& s : script::kStyles) {
    if (!s.wsh) continue;
    for (const Case& c : cases(s)) {
      INFO(s.extensions << ": " << c.label);
      const fs::path in = d.path / file_name(s);
      write_all(in, c.bytes);
      // UTF-16LE of the text without its BOM, then its length in code units (32-bit LE).
      const std::u16string u = units_of(c.text);
      Bytes hashed = le_bytes(u);
      for (int i = 0; i < 4; ++i) hashed.push_back(static_cast<std::uint8_t>(u.size() >> (8 * i)));
      const Bytes expected = tsign::hash(DigestAlg::sha256, hashed);
      auto f = tsign::formats::open(in);
      CHECK(f->format_name() == s.name);
      CHECK(f->digest(DigestAlg::sha256) == expected);

      const Bytes signed_bytes = sign_in_memory(in, der);
      write_all(d.path / ("signed" + in.extension().string()), signed_bytes);
      auto g = tsign::formats::open(d.path / ("signed" + in.extension().string()));
      REQUIRE(g->existing_signature());
      CHECK(*g->existing_signature() == der);
      CHECK(g->digest(DigestAlg::sha256) == expected);
      // The block as WSH writes it, in the file's encoding: CRLF, the Begin line, lines of 44
      // base64 characters, the End line.
      const std::string b64 = tsign::base64_encode(der);
      std::string block = "\r\n" + std::string(s.begin) + "\r\n";
      for (std::size_t i = 0; i < b64.size(); i += 44)
        block += std::string(s.open) + b64.substr(i, 44) + "\r\n";
      block += std::string(s.end) + "\r\n";
      Bytes expected_file;
      if (s.before_last_job) {
        const std::size_t job = c.text.rfind("</job>");
        expected_file = encode(c.text.substr(0, job) + block + c.text.substr(job), c.enc);
      } else {
        expected_file = encode(c.text + block, c.enc);
      }
      CHECK(signed_bytes == expected_file);
      // Re-signing replaces the block.
      CHECK(sign_in_memory(d.path / ("signed" + in.extension().string()), der) == signed_bytes);
    }
  }
}

TEST_CASE("every script family carries its SIP's SpcSipInfo", "[script]") {
  using tsign::to_hex;
  const auto sip = [](script::Family f) { return to_hex(script::signed_content(f).spc_value); };
  for (const script::Style& s : script::kStyles)
    CHECK(script::signed_content(s.family).spc_type == "1.3.6.1.4.1.311.2.1.30");
  // SEQUENCE { INTEGER 65536, OCTET STRING(16) {603BCC1F-...}, INTEGER 0 ×5 }, as osslsigncode.
  CHECK(sip(script::Family::powershell) ==
        "3026020301000004101fcc3b60594b084eb724d2c6297ef351020100020100020100020100020100");
  CHECK(sip(script::Family::mof) == sip(script::Family::powershell));
  CHECK(sip(script::Family::powershell_xml) == sip(script::Family::powershell));
  // INTEGER 1 and the VBScript SIP's GUID, as in the Microsoft-signed scripts of the SDK.
  CHECK(sip(script::Family::vbs) ==
        "30240201010410"
        "4ef0291699"
        "27b54d8fe5ace10f17ebab"
        "020100020100020100020100020100");
  CHECK(sip(script::Family::js).find("10e0c906ce38d411a2a300104bd35090") != std::string::npos);
  CHECK(sip(script::Family::wsf).find("7005611ace38d411a2a300104bd35090") != std::string::npos);
}

TEST_CASE("a one-character edit changes every family's digest", "[script]") {
  Dir d;
  for (const script::Style& s : script::kStyles) {
    INFO(s.extensions);
    const Case c = cases(s).front();
    const fs::path in = d.path / file_name(s);
    write_all(in, c.bytes);
    const Bytes before = tsign::formats::open(in)->digest(DigestAlg::sha256);
    Bytes edited = c.bytes;
    const auto at = std::find(edited.begin(), edited.end(), std::uint8_t{'o'});
    REQUIRE(at != edited.end());
    *at = 'O';
    write_all(in, edited);
    CHECK(tsign::formats::open(in)->digest(DigestAlg::sha256) != before);
  }
}

TEST_CASE("scripts in other encodings, invalid text and damaged blocks are refused by name",
          "[script]") {
  using F = script::Family;
  const std::string sig = tsign::base64_encode(some_signature());
  auto ps_block = [&](const std::string& b64) {
    std::string b = "\r\n# SIG # Begin signature block\r\n";
    for (std::size_t i = 0; i < b64.size(); i += 64) b += "# " + b64.substr(i, 64) + "\r\n";
    return b + "# SIG # End signature block\r\n";
  };
  auto bytes = [](const std::string& s) { return Bytes(s.begin(), s.end()); };
  struct Bad {
    Bytes data;
    F family;
    std::string message;
  };
  const std::string good = ps_block(sig);
  const std::vector<Bad> bad = {
      {Bytes{0xFE, 0xFF, 0, 'a'}, F::powershell, "UTF-16 big-endian"},
      {Bytes{0xFF, 0xFE, 0, 0, 'a', 0, 0, 0}, F::powershell, "UTF-32"},
      {Bytes{0, 0, 0xFE, 0xFF, 0, 0, 0, 'a'}, F::vbs, "UTF-32"},
      {bytes("ok\xC3("), F::powershell, "not valid UTF-8 (at byte 2)"},
      {bytes("\xC0\xAF"), F::powershell, "not valid UTF-8"},          // overlong
      {bytes("\xED\xA0\x80"), F::powershell, "not valid UTF-8"},      // a surrogate
      {bytes("\xF4\x90\x80\x80"), F::powershell, "not valid UTF-8"},  // past U+10FFFF
      {Bytes{'a', 0, 'b', 0}, F::powershell, "NUL character"},        // UTF-16 without its BOM
      {Bytes{0xFF, 0xFE, 'a', 0, 'b'}, F::powershell, "odd number of bytes"},
      {Bytes{0xFF, 0xFE, 0x00, 0xDC}, F::powershell, "unpaired surrogate"},
      {Bytes{0xFF, 0xFE, 'a', 0, 0x00, 0xD8}, F::powershell, "unpaired surrogate"},
      {Bytes{}, F::powershell, "the script is empty"},
      {Bytes{0xEF, 0xBB, 0xBF}, F::js, "the script is empty"},
      {bytes(good.substr(2)), F::powershell, "does not follow the script's text"},
      {bytes(good), F::powershell, "the script is empty"},
      {bytes("caf\xC3\xA9\r\n"), F::vbs, "non-ASCII text (at byte 3) but no byte order mark"},
      {bytes("caf\xC3\xA9\r\n"), F::powershell_xml, "no byte order mark"},
      {bytes("x" + good), F::powershell, ""},  // the control: a valid signed script
      {bytes("<package></package>\r\n"), F::wsf, "no </job> element"},
      {bytes("x\r\n# SIG # Begin signature block\r\n# " + sig.substr(0, 64) + "\r\n"),
       F::powershell, "Begin line but no '# SIG # End signature block' line"},
      {bytes("x\r\n# SIG # End signature block\r\n"), F::powershell,
       "without a Begin line before it"},
      {bytes("x" + good + good), F::powershell, "2 '# SIG # Begin signature block' and 2"},
      {bytes("x" + good + "Write-Host evil\r\n"), F::powershell, "text after the signature block"},
      {bytes("x" + ps_block(sig.substr(0, 60) + "!!!!" + sig.substr(64))), F::powershell,
       "something other than base64"},
      {bytes("x" + ps_block("QUJD" + sig.substr(4))), F::powershell,
       "does not hold one PKCS#7 SignedData"},
      {bytes("x" + ps_block(sig.substr(0, sig.size() - 4))), F::powershell,
       "does not hold one PKCS#7 SignedData"},
      {bytes("x" + ps_block(sig.substr(0, sig.size() - 1))), F::powershell, "base64 is malformed"},
      {bytes("x\r\n# SIG # Begin signature block\n# " + sig +
             "\r\n# SIG # End signature block\r\n"),
       F::powershell, "Begin line does not end with CRLF"},
  };
  for (const Bad& b : bad) {
    INFO(tsign::to_hex(b.data).substr(0, 80) << " -> " << b.message);
    const std::string e = parse_error(b.data, b.family);
    if (b.message.empty()) {
      CHECK(e.empty());
    } else {
      CHECK(e.rfind("in.script: ", 0) == 0);
      CHECK(e.find(b.message) != std::string::npos);
    }
  }
  // Larger than the cap: refused before it is read.
  Dir d;
  const fs::path big = d.path / "big.ps1";
  { std::ofstream(big) << "x"; }
  fs::resize_file(big, script::kMaxScript + 1);
  try {
    tsign::formats::open(big);
    FAIL("not refused");
  } catch (const tsign::FileError& e) {
    CHECK(std::string(e.what()).find("tsign signs scripts of up to 64 MiB") != std::string::npos);
  }
}

TEST_CASE("a script refuses append-signature before anything is requested", "[script]") {
  Dir d;
  const fs::path p = d.path / "a.ps1";
  write_all(p, Bytes{'x', '\r', '\n'});
  auto f = tsign::formats::open(p);
  try {
    f->check_can_nest(DigestAlg::sha256);
    FAIL("not refused");
  } catch (const tsign::FileError& e) {
    CHECK(std::string(e.what()).rfind(p.string() + ": a script holds one signature", 0) == 0);
  }
}

TEST_CASE("a script edited after it was opened is not signed", "[script]") {
  Dir d;
  const fs::path p = d.path / "a.vbs";
  write_all(p, Bytes{'a', '\r', '\n'});
  auto f = tsign::formats::open(p);
  write_all(p, Bytes{'b', '\r', '\n'});  // the same size, another text
  MemoryOutput out;
  try {
    f->write_signed(some_signature(), out, DigestAlg::sha256);
    FAIL("not refused");
  } catch (const tsign::FileError& e) {
    CHECK(std::string(e.what()).find("changed while it was being signed") != std::string::npos);
  }
  CHECK(out.bytes.empty());
}
