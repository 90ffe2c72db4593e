// Scripts: PowerShell (.ps1 .psm1 .psd1, and the XML members .ps1xml .psc1 .cdxml), MOF, JScript
// (.js), VBScript (.vbs) and Windows Script Files (.wsf), signed as signtool signs them
// (docs/formats.md, "Scripts"). A script carries its signature as a block of comments in its
// own syntax: base64 of the DER PKCS#7 in fixed-width lines, CRLF line ends, in the script's
// own encoding, e.g. for PowerShell
//
//   <script text>CRLF
//   # SIG # Begin signature block CRLF
//   # MIIk...  (64 base64 characters a line) CRLF
//   # SIG # End signature block CRLF
//
// The CRLF before the Begin line belongs to the block. Two SIPs hash the text, which both read
// as UTF-16LE:
//  - the PowerShell SIP (PowerShell family and MOF): the UTF-16LE of everything before the block,
//    a byte order mark included (as U+FEFF); SpcSipInfo version 65536 with its GUID;
//  - the Windows Script Host SIP (JScript, VBScript, WSF): the UTF-16LE of the text without its
//    byte order mark and without the block, then the number of UTF-16 code units hashed as a
//    32-bit little-endian integer; SpcSipInfo version 1 with one GUID per language. A WSF's
//    block is an XML <signature> element placed before its last </job>.
// What is hashed and each family's block syntax follow osslsigncode's script.c (PowerShell,
// MOF; the judge of our output), relic's and jsign's script signers, and a Microsoft-signed
// VBScript from the Windows SDK whose digest the WSH rule reproduces (docs/formats.md).
//
// Scripts are read whole (up to kMaxScript): they are small, and the text must be decoded and
// checked anyway. Content cannot tell a script from other text, so the registry chooses a
// family by extension, one row per family.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string_view>

#include "common/bytes.hpp"
#include "common/digest.hpp"
#include "formats/format.hpp"
#include "formats/spc_data.hpp"

namespace tsign::formats::script {

enum class Family { powershell, powershell_xml, mof, js, vbs, wsf };

// One script family: how its block is written and how its SIP hashes it.
struct Style {
  Family family;
  std::string_view name;        // format_name(), as in the JSON report and the summary
  std::string_view extensions;  // as in the registry: lower case, space-separated
  std::string_view begin;       // the block's first line
  std::string_view end;         // its last line
  std::string_view open;        // before the base64 of each line
  std::string_view close;       // after it
  std::size_t width;            // base64 characters a line
  bool wsh;                     // the Windows Script Host SIP's digest (else PowerShell's)
  // Without a byte order mark Windows reads these in the system's code page, not as UTF-8, so
  // the digest of non-ASCII text would depend on the machine: such a file must have a BOM.
  bool ascii_without_bom;
  bool before_last_job;  // WSF: the block goes before the last </job>, not at the end
  long sip_version;
  SipGuid sip_guid;
};

// One row per family (in Family's order); adding a script language is one row here, one in
// the registry.
inline constexpr std::array<Style, 6> kStyles{{
    // PowerShell SIP: {603BCC1F-4B59-4E08-B724-D2C6297EF351}, version 65536.
    {Family::powershell, "powershell", ".ps1 .psm1 .psd1", "# SIG # Begin signature block",
     "# SIG # End signature block", "# ", "", 64, false, false, false, 65536,
     SipGuid{0x1F, 0xCC, 0x3B, 0x60, 0x59, 0x4B, 0x08, 0x4E, 0xB7, 0x24, 0xD2, 0xC6, 0x29, 0x7E,
             0xF3, 0x51}},
    {Family::powershell_xml, "powershell", ".ps1xml .psc1 .cdxml",
     "<!-- SIG # Begin signature block -->", "<!-- SIG # End signature block -->", "<!-- ", " -->",
     64, false, true, false, 65536,
     SipGuid{0x1F, 0xCC, 0x3B, 0x60, 0x59, 0x4B, 0x08, 0x4E, 0xB7, 0x24, 0xD2, 0xC6, 0x29, 0x7E,
             0xF3, 0x51}},
    {Family::mof, "mof", ".mof", "/* SIG # Begin signature block */",
     "/* SIG # End signature block */", "/* ", " */", 64, false, false, false, 65536,
     SipGuid{0x1F, 0xCC, 0x3B, 0x60, 0x59, 0x4B, 0x08, 0x4E, 0xB7, 0x24, 0xD2, 0xC6, 0x29, 0x7E,
             0xF3, 0x51}},
    // Windows Script Host SIP, version 1: JScript {06C9E010-38CE-11D4-A2A3-00104BD35090},
    // VBScript {1629F04E-2799-4DB5-8FE5-ACE10F17EBAB}, WSF {1A610570-38CE-11D4-A2A3-00104BD35090}.
    // 44 base64 characters a line, as in the scripts Microsoft signs.
    {Family::js, "js", ".js", "// SIG // Begin signature block", "// SIG // End signature block",
     "// SIG // ", "", 44, true, true, false, 1,
     SipGuid{0x10, 0xE0, 0xC9, 0x06, 0xCE, 0x38, 0xD4, 0x11, 0xA2, 0xA3, 0x00, 0x10, 0x4B, 0xD3,
             0x50, 0x90}},
    {Family::vbs, "vbs", ".vbs", "'' SIG '' Begin signature block", "'' SIG '' End signature block",
     "'' SIG '' ", "", 44, true, true, false, 1,
     SipGuid{0x4E, 0xF0, 0x29, 0x16, 0x99, 0x27, 0xB5, 0x4D, 0x8F, 0xE5, 0xAC, 0xE1, 0x0F, 0x17,
             0xEB, 0xAB}},
    {Family::wsf, "wsf", ".wsf", "<signature>", "</signature>", "** SIG ** ", "", 44, true, false,
     true, 1,
     SipGuid{0x70, 0x05, 0x61, 0x1A, 0xCE, 0x38, 0xD4, 0x11, 0xA2, 0xA3, 0x00, 0x10, 0x4B, 0xD3,
             0x50, 0x90}},
}};

constexpr const Style& style(Family f) {
  return kStyles[static_cast<std::size_t>(f)];
}

// The largest script tsign reads (it is read whole).
inline constexpr std::uint64_t kMaxScript = std::uint64_t{64} << 20;

enum class Encoding { utf8, utf8_bom, utf16le };

struct Layout {
  Family family = Family::powershell;
  Encoding encoding = Encoding::utf8;
  std::uint64_t file_size = 0;
  // The signature block's bytes [block_begin, block_end), its leading CRLF included; equal when
  // the script is unsigned (then where a block will go).
  std::size_t block_begin = 0;
  std::size_t block_end = 0;
  Bytes pkcs7_der;    // the existing signature; empty when unsigned
  Bytes file_sha256;  // of the whole file as parsed: an edit since is detected when writing

  bool has_signature() const { return !pkcs7_der.empty(); }
  bool operator==(const Layout&) const = default;
};

// Full validation of a script's bytes: encoding, text, signature block. Throws FileError
// "<name>: <reason>" for anything the signer must refuse (an encoding other than UTF-8 or
// UTF-16LE with BOM, invalid text, NUL characters, a half or damaged block, two blocks, ...).
Layout parse(ByteView file, Family family, std::string_view name);

// The SIP's digest of the script text (the block excluded).
Bytes digest(ByteView file, const Layout& layout, DigestAlg alg);

// The script with `pkcs7_der` as its only signature block (any old block replaced); every
// other byte is the original's, in order.
Bytes with_signature(ByteView file, const Layout& layout, ByteView pkcs7_der);

// The SpcIndirectDataContent data member of a family: SpcSipInfo with its SIP's GUID.
SignedContent signed_content(Family family);

std::unique_ptr<SignableFile> open(const std::filesystem::path& path, Family family);

// The registry's open function of a family (the registry passes only the path, which may be a
// temporary name: the family is fixed by the row).
template <Family F>
std::unique_ptr<SignableFile> open(const std::filesystem::path& path) {
  return open(path, F);
}

}  // namespace tsign::formats::script
