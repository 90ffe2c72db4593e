// Cabinet files (.cab): Microsoft "Cabinet File Format" (MS-CAB: CFHEADER, CFFOLDER, CFFILE,
// CFDATA), signed as signtool signs them. The signature is a PKCS#7 appended after the cabinet's
// content, described by a 20-byte reserve in the CFHEADER (cbCFHeader = 20):
//
//   offset 36  cbCFHeader = 20 (u16), cbCFFolder = 0, cbCFData = 0
//          40  0x00100000        a fixed first word
//          44  signature offset  (= cbCabinet: where the content ends)
//          48  signature size    (the DER padded with zeros to 8 bytes)
//          52  8 zero bytes
//
// A cabinet without a reserve gets one: the 24 bytes inserted at offset 36 shift coffFiles,
// every CFFOLDER's coffCabStart and cbCabinet by 24, and cfhdrRESERVE_PRESENT is set. The
// Authenticode digest covers the cabinet as signed, minus reserved1 (4..7) and iCabinet through
// the reserve's offset and size (34..55). These facts (undocumented by Microsoft) follow
// osslsigncode's cab.c, the judge of our output; docs/formats.md "CAB" summarises them.
//
// Refused, before any signature is requested: members of a multi-cabinet set (PREV/NEXT flags:
// what Windows hashes of the set's names is not known, and osslsigncode disagrees with itself on
// it), and cabinets whose reserve is used for something else (another cbCFHeader, or per-folder
// or per-block reserves), which cannot take the Authenticode layout without rewriting them.
//
// The functions work on a pe::Source (a file or a memory buffer) so the unit tests and the fuzz
// target exercise exactly the code the signer runs.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string_view>

#include "common/bytes.hpp"
#include "common/digest.hpp"
#include "formats/format.hpp"
#include "formats/pe.hpp"

namespace tsign::platform {
class ReadFile;
}

namespace tsign::formats::cab {

using pe::MemorySource;
using pe::Source;

struct Layout {
  std::uint64_t file_size = 0;
  std::uint32_t cb_cabinet = 0;
  std::uint32_t coff_files = 0;
  std::uint16_t flags = 0;
  std::uint16_t folders = 0;
  std::uint16_t files = 0;
  bool has_reserve = false;      // the 20-byte Authenticode reserve is there (signed or not)
  std::uint32_t sig_offset = 0;  // from the reserve; 0 when unsigned
  std::uint32_t sig_size = 0;
  Bytes pkcs7_der;  // the existing signature without its padding; empty when unsigned

  bool has_signature() const { return sig_size != 0; }
  // Where the cabinet's content ends: the signature's start, or the end of the file.
  std::uint64_t content_end() const { return has_signature() ? sig_offset : file_size; }
  // The size of the content once signed (a reserve is inserted if there is none).
  std::uint64_t signed_content_end() const { return content_end() + (has_reserve ? 0 : 24); }
  bool operator==(const Layout&) const = default;
};

// Content detection only: "MSCF", reserved1 zero, version 1.3. Never throws. A cabinet tsign
// then refuses is still detected, so the user is told why rather than "not supported".
bool detect(Source& src);

// Full validation: every offset and count checked against the file. Throws FileError
// "<name>: <reason>" for anything the signer must refuse.
Layout parse(Source& src, std::string_view name);

// The Authenticode digest of the cabinet as it will be (or is) signed. Streamed.
Bytes authenticode_digest(Source& src, const Layout& layout, DigestAlg alg,
                          std::string_view name = "<memory>");

// Throws FileError if the signed cabinet would not fit the reserve's 32-bit offset and size.
void check_can_embed(const Layout& layout, std::uint64_t max_signature_bytes,
                     std::string_view name);

// Streams the cabinet with `pkcs7_der` as its only signature to `out` and returns the digest
// (`alg`) of the bytes written. The header is re-read and checked against `layout` first.
Bytes write_signed(Source& src, const Layout& layout, ByteView pkcs7_der, SignedOutput& out,
                   std::string_view name, DigestAlg alg = DigestAlg::sha256);

// The signing in one read (SignableFile::digest_copying): streams the signed header and the
// content to `copy` and returns their digest; then finish_copy fills in the signature's size and
// appends it. Together they write what write_signed writes.
Bytes digest_copying(Source& src, const Layout& layout, DigestAlg alg, PatchableOutput& copy,
                     std::string_view name);
void finish_copy(const Layout& layout, ByteView pkcs7_der, PatchableOutput& copy,
                 std::string_view name);

// The SignableFile for a cabinet; reopens the file for each operation (as pe::open).
std::unique_ptr<SignableFile> open(const std::filesystem::path& path);
bool detect(platform::ReadFile& file);

}  // namespace tsign::formats::cab
