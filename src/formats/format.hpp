// The file-format interface: everything the signing pipeline needs to know about one kind of
// signable file. Each format lives in its own file and names the specification it implements;
// the registry (registry.cpp) picks the format by content, never by extension alone.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string_view>
#include <vector>

#include "common/bytes.hpp"
#include "common/digest.hpp"

namespace tsign::formats {

// Which SpcIndirectDataContent "data" member a format's signature carries (authenticode.md).
enum class SpcKind {
  pe_image,  // SpcPeImageData, 1.3.6.1.4.1.311.2.1.15
};

// Where write_signed puts the bytes (a ReplaceFile in production, memory in tests).
class SignedOutput {
 public:
  virtual ~SignedOutput() = default;
  virtual void write(ByteView data) = 0;
};

// One opened file. Not thread-safe; a format never starts a thread.
class SignableFile {
 public:
  virtual ~SignableFile() = default;

  virtual std::string_view format_name() const = 0;  // "pe" (as in the JSON report)
  virtual SpcKind spc_kind() const = 0;
  const std::filesystem::path& path() const { return path_; }
  virtual std::uint64_t size() const = 0;

  // The format's Authenticode digest of the content, excluding the signature and the fields
  // that change when it is embedded. Streams the file: memory does not grow with its size.
  virtual Bytes digest(DigestAlg alg) = 0;

  // The DER PKCS#7 ContentInfo of the existing primary signature, if the file has one.
  virtual std::optional<Bytes> existing_signature() = 0;

  // Throws FileError naming the file if a signature of up to `max_signature_bytes` (DER) could
  // not be embedded in it (a PE must stay under 4 GiB), so that such a file is refused before a
  // signature is requested for it.
  virtual void check_can_embed(std::uint64_t max_signature_bytes) const {
    (void)max_signature_bytes;
  }

  // Writes the whole file with `pkcs7_der` (a DER ContentInfo) as its only signature, replacing
  // any existing one, to `out` (streamed). The caller makes `out` replace the file atomically.
  // Returns the format's digest (`alg`) of the bytes exactly as they were written to `out`: the
  // caller compares it with the digest that was signed, so a file edited while it was being
  // signed is never embedded with a signature over other bytes.
  virtual Bytes write_signed(ByteView pkcs7_der, SignedOutput& out,
                             DigestAlg alg = DigestAlg::sha256) = 0;

  // The DER PKCS#7s of further signatures the file carries beside the primary one, in file order
  // (PE: the certificate table's later WIN_CERTIFICATE entries). Windows checks only the primary.
  virtual std::vector<Bytes> other_signatures() { return {}; }

  // append-signature: as write_signed, but the other signatures stay, unchanged, after the new
  // primary one (replacing drops them: the new signature is then the file's only one).
  virtual Bytes write_signed_keeping_others(ByteView pkcs7_der, SignedOutput& out,
                                            DigestAlg alg = DigestAlg::sha256) {
    return write_signed(pkcs7_der, out, alg);
  }

 protected:
  explicit SignableFile(std::filesystem::path p) : path_(std::move(p)) {}

 private:
  std::filesystem::path path_;
};

// Opens `path` as the first format whose content matches. Throws FileError naming the file and
// why when no format applies or the file is malformed.
std::unique_ptr<SignableFile> open(const std::filesystem::path& path);

// True if some format recognises the content (for the file selection; never throws for I/O).
bool is_supported(const std::filesystem::path& path);

}  // namespace tsign::formats
