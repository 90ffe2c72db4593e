// Windows app packages (.appx .msix) and bundles (.appxbundle .msixbundle): ZIP packages (zip.hpp)
// in the Open Packaging Conventions layout of Microsoft's "App package format" (AppxManifest.xml
// or AppxMetadata/AppxBundleManifest.xml, AppxBlockMap.xml, [Content_Types].xml), signed as
// signtool signs them. The signature is the part AppxSignature.p7x, "PKCX" followed by the DER
// PKCS#7, written as the package's last record, with its Override in [Content_Types].xml:
//
//   <Override PartName="/AppxSignature.p7x" ContentType="application/vnd.ms-appx.signature"/>
//
// inserted before "</Types>". The SpcIndirectDataContent's data is SpcSipInfo { 0x01010000, the
// APPX SIP's GUID (stored bytes 4B DF C5 0A 07 CE E2 4D B7 6E 23 C8 39 A0 9F D1; a bundle's:
// B3 58 5F 0F DE AA 9A 4B A4 34 95 74 2D 92 EC EB), 0 x5 }, and its "digest" is not one hash but
// a blob of tagged hashes of the package as signed, each with the block map's algorithm:
//
//   "APPX" "AXPC" H(every local record but the signature's: header, data, data descriptor)
//          "AXCD" H(the central directory and end records as they would be without the
//                   signature's record: offsets as in the signed file, disk numbers 0)
//          "AXCT" H([Content_Types].xml, uncompressed, with the signature's Override)
//          "AXBM" H(AppxBlockMap.xml, uncompressed)
//         ["AXCI" H(AppxMetadata/CodeIntegrity.cat, uncompressed), when the package has one]
//
// These facts follow osslsigncode's appx.c (the judge of our output); Microsoft documents the
// parts but not the blob. docs/formats.md "App packages (APPX/MSIX)" summarises them.
//
// Checked when the package is opened, before any signature is requested: the zip structure
// (zip.hpp, strict), the block map against the package (every file's 64 KiB blocks and local
// header size, every file in it and in the zip; the block map's hash method is the algorithm
// the package must be signed with), and, once the signing certificate is known, that its
// subject equals the manifest's Publisher (check_publisher). An app package holds one
// signature: append-signature is refused (signtool refuses /as for packages too); signing again
// replaces AppxSignature.p7x. The packages inside a bundle are not touched: each is signed (or
// not) as its author built it, as signtool does.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/bytes.hpp"
#include "common/digest.hpp"
#include "formats/format.hpp"
#include "formats/source.hpp"
#include "formats/zip.hpp"

namespace tsign::platform {
class ReadFile;
}

namespace tsign::formats::appx {

inline constexpr std::string_view kSignaturePart = "AppxSignature.p7x";
inline constexpr std::string_view kContentTypesPart = "[Content_Types].xml";
inline constexpr std::string_view kBlockMapPart = "AppxBlockMap.xml";
inline constexpr std::string_view kManifestPart = "AppxManifest.xml";
inline constexpr std::string_view kBundleManifestPart = "AppxMetadata/AppxBundleManifest.xml";
inline constexpr std::string_view kCodeIntegrityPart = "AppxMetadata/CodeIntegrity.cat";
inline constexpr std::string_view kSignatureOverride =
    "<Override PartName=\"/AppxSignature.p7x\" "
    "ContentType=\"application/vnd.ms-appx.signature\"/>";

struct Layout {
  zip::Archive archive;
  bool bundle = false;
  DigestAlg alg = DigestAlg::sha256;     // the block map's HashMethod
  std::string publisher;                 // the manifest's Identity Publisher, as written
  std::optional<std::size_t> signature;  // index of AppxSignature.p7x (the last record)
  std::size_t content_types = 0, block_map = 0;
  std::optional<std::size_t> code_integrity;
  Bytes new_content_types;  // with the Override, when the package's lacks it (else empty)
  Bytes pkcs7_der;          // the existing signature; empty when unsigned

  bool operator==(const Layout&) const = default;
};

// A zip whose central directory names AppxManifest.xml or AppxBundleManifest.xml. Never throws.
bool detect(Source& src);

// Everything checked (see the header). Throws FileError "<name>: <reason>".
Layout parse(Source& src, std::string_view name);

// The package's digest blob (see the header) as it will be signed; `alg` must be the block
// map's. Streamed.
Bytes package_digest(Source& src, const Layout& l, DigestAlg alg, std::string_view name);

// Streams the package with `pkcs7_der` as its AppxSignature.p7x to `out`; returns the digest
// blob of what was written. The structure is read again and must be as it was opened.
Bytes write_signed(Source& src, const Layout& l, ByteView pkcs7_der, SignedOutput& out,
                   std::string_view name, DigestAlg alg);

// DER of the SpcSipInfo for a package or a bundle.
Bytes sip_info(bool bundle);

// Compares a Publisher string with a certificate's subject (DER of the certificate) the way
// Windows does (docs/formats.md): RDNs in the string's order are the subject's from last to
// first (RFC 4514), attribute types by name (CN, O, OU, L, S/ST, C, E, STREET, T, G, I, SN,
// SERIALNUMBER, DC, PostalCode) or OID ("OID.2.5.4.3" or "2.5.4.3"), values quoted ("…", with ""
// or \" inside) or with backslash escapes, compared after trimming blanks and ignoring ASCII
// case; multi-valued RDNs ("+") in any order. Throws FileError naming the file when they differ
// or the Publisher cannot be read, showing both names.
void check_publisher(std::string_view publisher, ByteView leaf_der, bool bundle,
                     std::string_view name);

std::unique_ptr<SignableFile> open(const std::filesystem::path& path);
bool detect(platform::ReadFile& file);

}  // namespace tsign::formats::appx
