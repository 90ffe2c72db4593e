// Scripts: the signature block in the script's comment syntax and the two script SIPs' digests,
// as script.hpp's header describes (docs/formats.md, "Scripts").
#include "formats/script.hpp"

#include <algorithm>
#include <string>

#include <openssl/err.h>
#include <openssl/pkcs7.h>

#include "common/error.hpp"
#include "common/ossl.hpp"
#include "formats/source.hpp"
#include "platform/platform.hpp"

namespace tsign::formats::script {

namespace {

// The text as UTF-16 code units (what both SIPs hash). The block is found in units and cut in
// bytes, so that the body's bytes are copied exactly as they are: byte_of and unit_of map one to
// the other (a scan for UTF-8; no table, so memory stays at the text's size).
struct Text {
  std::u16string units;
  std::size_t bom_units = 0;  // 1 if the text starts with a byte order mark
  ByteView bytes;
  bool utf16 = false;
};

// The length of the (valid) UTF-8 sequence that starts with `lead`, and its UTF-16 units.
std::size_t utf8_length(std::uint8_t lead) {
  return lead < 0x80 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4;
}

std::size_t byte_of(const Text& t, std::size_t unit) {
  if (t.utf16) return unit * 2;
  std::size_t b = 0;
  for (std::size_t u = 0; u < unit && b < t.bytes.size();) {
    const std::size_t n = utf8_length(t.bytes[b]);
    b += n;
    u += n == 4 ? 2 : 1;
  }
  return b;
}

std::size_t unit_of(const Text& t, std::size_t byte) {
  if (t.utf16) return byte / 2;
  std::size_t u = 0;
  for (std::size_t b = 0; b < byte && b < t.bytes.size();) {
    const std::size_t n = utf8_length(t.bytes[b]);
    b += n;
    u += n == 4 ? 2 : 1;
  }
  return u;
}

std::string position(std::size_t byte) {
  return "at byte " + std::to_string(byte);
}

// Decodes strict UTF-8 (no overlong forms, surrogates or code points past U+10FFFF).
Text decode_utf8(ByteView b, std::size_t from, std::string_view name) {
  Text t;
  t.bytes = b;
  t.units.reserve(b.size());
  for (std::size_t i = from; i < b.size();) {
    const std::uint8_t c = b[i];
    std::uint32_t cp = 0;
    std::size_t n = 0;
    if (c < 0x80) {
      cp = c, n = 1;
    } else if (c >= 0xC2 && c <= 0xDF) {
      cp = c & 0x1Fu, n = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
      cp = c & 0x0Fu, n = 3;
    } else if (c >= 0xF0 && c <= 0xF4) {
      cp = c & 0x07u, n = 4;
    } else {
      n = 0;
    }
    bool ok = n != 0 && i + n <= b.size();
    for (std::size_t k = 1; ok && k < n; ++k) {
      if ((b[i + k] & 0xC0) != 0x80) ok = false;
      cp = (cp << 6) | (b[i + k] & 0x3Fu);
    }
    if (ok && ((n == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
               (n == 4 && (cp < 0x10000 || cp > 0x10FFFF))))
      ok = false;
    if (!ok)
      fail(name, "the text is not valid UTF-8 (" + position(i) +
                     "); tsign signs scripts saved as UTF-8 (with or without a byte order mark) "
                     "or UTF-16LE with a byte order mark");
    if (cp == 0)
      fail(name, "the text holds a NUL character (" + position(i) +
                     "): not a script in UTF-8 (a UTF-16 file without its byte order mark?)");
    if (cp >= 0x10000) {
      t.units.push_back(static_cast<char16_t>(0xD800 + ((cp - 0x10000) >> 10)));
      t.units.push_back(static_cast<char16_t>(0xDC00 + ((cp - 0x10000) & 0x3FF)));
    } else {
      t.units.push_back(static_cast<char16_t>(cp));
    }
    i += n;
  }
  return t;
}

Text decode_utf16le(ByteView b, std::string_view name) {
  if (b.size() % 2 != 0)
    fail(name, "the file starts with a UTF-16LE byte order mark but has an odd number of bytes");
  Text t;
  t.bytes = b;
  t.utf16 = true;
  t.units.reserve(b.size() / 2);
  for (std::size_t i = 0; i < b.size(); i += 2) {
    const auto u = static_cast<char16_t>(b[i] | (b[i + 1] << 8));
    if (u == 0) fail(name, "the text holds a NUL character (" + position(i) + ")");
    const bool low = u >= 0xDC00 && u <= 0xDFFF;
    const bool after_high =
        !t.units.empty() && t.units.back() >= 0xD800 && t.units.back() <= 0xDBFF;
    if ((low && !after_high) || (!low && after_high))
      fail(name, "the UTF-16LE text has an unpaired surrogate (" + position(i) + ")");
    t.units.push_back(u);
  }
  if (!t.units.empty() && t.units.back() >= 0xD800 && t.units.back() <= 0xDBFF)
    fail(name, "the UTF-16LE text ends with an unpaired surrogate");
  t.bom_units = 1;
  return t;
}

Encoding detect_encoding(ByteView b, std::string_view name) {
  auto starts = [&](std::initializer_list<std::uint8_t> p) {
    return b.size() >= p.size() && std::equal(p.begin(), p.end(), b.begin());
  };
  if (starts({0xFF, 0xFE, 0x00, 0x00}) || starts({0x00, 0x00, 0xFE, 0xFF}))
    fail(name,
         "the script is UTF-32; tsign signs UTF-8 (with or without a byte order mark) and "
         "UTF-16LE with a byte order mark: save it in one of those");
  if (starts({0xFE, 0xFF}))
    fail(name,
         "the script is UTF-16 big-endian; tsign signs UTF-8 (with or without a byte order "
         "mark) and UTF-16LE with a byte order mark: save it in one of those");
  if (starts({0xFF, 0xFE})) return Encoding::utf16le;
  if (starts({0xEF, 0xBB, 0xBF})) return Encoding::utf8_bom;
  return Encoding::utf8;
}

Text decode(ByteView b, Encoding e, std::string_view name) {
  if (e == Encoding::utf16le) return decode_utf16le(b, name);
  Text t = decode_utf8(b, 0, name);
  if (e == Encoding::utf8_bom) t.bom_units = 1;  // EF BB BF decodes to U+FEFF
  return t;
}

bool is_line_start(const Text& t, std::size_t i) {
  return i == t.bom_units || (i > t.bom_units && t.units[i - 1] == u'\n');
}

bool matches(const Text& t, std::size_t i, std::string_view ascii) {
  if (i + ascii.size() > t.units.size()) return false;
  for (std::size_t k = 0; k < ascii.size(); ++k)
    if (t.units[i + k] != static_cast<char16_t>(static_cast<unsigned char>(ascii[k]))) return false;
  return true;
}

// The positions (in units) where `line` starts a line.
std::vector<std::size_t> find_lines(const Text& t, std::string_view line) {
  std::vector<std::size_t> found;
  for (std::size_t i = t.bom_units; i + line.size() <= t.units.size(); ++i)
    if (is_line_start(t, i) && matches(t, i, line)) found.push_back(i);
  return found;
}

// The last "</job>" (WSF: where the block goes), in units; npos if none.
std::size_t last_job_end(const Text& t, std::size_t limit) {
  static constexpr std::string_view kJob = "</job>";
  for (std::size_t i = std::min(limit, t.units.size()); i-- > 0;)
    if (matches(t, i, kJob)) return i;
  return std::u16string::npos;
}

bool is_base64_char(char16_t c) {
  return (c >= u'A' && c <= u'Z') || (c >= u'a' && c <= u'z') || (c >= u'0' && c <= u'9') ||
         c == u'+' || c == u'/' || c == u'=';
}

// Reads the block that starts at `begin` (the Begin line), checking each line's shape; returns
// the DER and sets `end_unit` to where the block ends (after its End line's CRLF, or at the
// end of the text if the End line is the last line without one).
Bytes read_block(const Text& t, const Style& s, std::size_t begin, std::size_t end_line,
                 std::size_t& end_unit, std::string_view name) {
  auto expect_crlf = [&](std::size_t at, const char* what) {
    if (!matches(t, at, "\r\n"))
      fail(name, std::string("the signature block's ") + what +
                     " does not end with CRLF; the block is damaged: remove it and sign again");
  };
  std::size_t i = begin + s.begin.size();
  expect_crlf(i, "Begin line");
  i += 2;
  std::string b64;
  while (i < end_line) {
    if (!matches(t, i, s.open))
      fail(name, "a line of the signature block does not start with '" + std::string(s.open) +
                     "' (" + position(byte_of(t, i)) +
                     "); the block is damaged: remove it and sign "
                     "again");
    i += s.open.size();
    const std::size_t from = i;
    while (i < end_line && is_base64_char(t.units[i]))
      b64.push_back(static_cast<char>(t.units[i++]));
    if (i == from || !matches(t, i, s.close) || !matches(t, i + s.close.size(), "\r\n"))
      fail(name, "a line of the signature block holds something other than base64 (" +
                     position(byte_of(t, i)) + "); the block is damaged: remove it and sign again");
    i += s.close.size() + 2;
  }
  if (i != end_line) fail(name, "the signature block's End line does not start a line");
  i += s.end.size();
  if (i == t.units.size()) {
    end_unit = i;
  } else {
    expect_crlf(i, "End line");
    end_unit = i + 2;
  }
  // Strict: the padding only at the end, whole quantums; base64_decode would skip line breaks
  // and spaces, of which the block has none by now.
  const auto pad = b64.find('=');
  if (b64.empty() || b64.size() % 4 != 0 ||
      (pad != std::string::npos &&
       (pad + 2 < b64.size() || b64.find_first_not_of('=', pad) != std::string::npos)))
    fail(name, "the signature block's base64 is malformed; remove the block and sign again");
  auto der = base64_decode(b64);
  if (!der || der->empty())
    fail(name, "the signature block's base64 is malformed; remove the block and sign again");
  const unsigned char* p = der->data();
  PKCS7Ptr p7(d2i_PKCS7(nullptr, &p, static_cast<long>(der->size())));
  if (!p7 || p != der->data() + der->size() || !PKCS7_type_is_signed(p7.get())) {
    ERR_clear_error();
    fail(name,
         "the signature block does not hold one PKCS#7 SignedData; remove the block and "
         "sign again");
  }
  return std::move(*der);
}

// Appends `ascii` in the file's encoding.
void put(Bytes& out, std::string_view ascii, Encoding e) {
  for (char c : ascii) {
    out.push_back(static_cast<std::uint8_t>(c));
    if (e == Encoding::utf16le) out.push_back(0);
  }
}

Bytes block_bytes(const Style& s, ByteView pkcs7_der, Encoding e) {
  const std::string b64 = base64_encode(pkcs7_der);
  Bytes out;
  put(out, "\r\n", e);
  put(out, s.begin, e);
  put(out, "\r\n", e);
  for (std::size_t i = 0; i < b64.size(); i += s.width) {
    put(out, s.open, e);
    put(out, std::string_view(b64).substr(i, s.width), e);
    put(out, s.close, e);
    put(out, "\r\n", e);
  }
  put(out, s.end, e);
  put(out, "\r\n", e);
  return out;
}

// Hashes units [from, to) as UTF-16LE, a chunk at a time.
void hash_units(Hasher& h, const std::u16string& units, std::size_t from, std::size_t to) {
  constexpr std::size_t kChunk = 32768;
  Bytes le;
  le.reserve(2 * std::min(kChunk, to - std::min(from, to)));
  for (std::size_t at = from; at < to; at += kChunk) {
    le.clear();
    for (std::size_t i = at; i < std::min(to, at + kChunk); ++i) {
      le.push_back(static_cast<std::uint8_t>(units[i]));
      le.push_back(static_cast<std::uint8_t>(units[i] >> 8));
    }
    h.update(le);
  }
}

}  // namespace

Layout parse(ByteView file, Family family, std::string_view name) {
  const Style& s = style(family);
  Layout l;
  l.family = family;
  l.file_size = file.size();
  if (file.size() > kMaxScript)
    fail(name, "the script is " + std::to_string(file.size()) +
                   " bytes; tsign signs scripts of up to " + std::to_string(kMaxScript >> 20) +
                   " MiB");
  l.encoding = detect_encoding(file, name);
  const Text t = decode(file, l.encoding, name);
  if (s.ascii_without_bom && l.encoding == Encoding::utf8) {
    auto it = std::find_if(file.begin(), file.end(), [](std::uint8_t b) { return b >= 0x80; });
    if (it != file.end())
      fail(name,
           "the script has non-ASCII text (" +
               position(static_cast<std::size_t>(it - file.begin())) +
               ") but no byte order mark: Windows reads such a script in the system's code page, "
               "not as UTF-8, so its signature would not verify everywhere. "
               "Save it as UTF-8 with a byte order mark (or UTF-16LE) and sign again");
  }

  const auto begins = find_lines(t, s.begin);
  const auto ends = find_lines(t, s.end);
  std::size_t begin_unit = 0, end_unit = 0;
  if (begins.empty() && ends.empty()) {
    if (s.before_last_job) {
      begin_unit = end_unit = last_job_end(t, t.units.size());
      if (begin_unit == std::u16string::npos)
        fail(name,
             "no </job> element: a Windows Script File's signature goes inside its last "
             "job; is this a .wsf?");
    } else {
      begin_unit = end_unit = t.units.size();
    }
  } else {
    if (begins.size() > 1 || ends.size() > 1)
      fail(name, "the script has " + std::to_string(begins.size()) + " '" + std::string(s.begin) +
                     "' and " + std::to_string(ends.size()) + " '" + std::string(s.end) +
                     "' lines; a script holds one signature block: remove the extra ones and "
                     "sign again");
    if (ends.empty())
      fail(name, "the signature block has its Begin line but no '" + std::string(s.end) +
                     "' line (a cut-off block?); remove it and sign again");
    if (begins.empty() || ends[0] < begins[0])
      fail(name, "the script has a '" + std::string(s.end) +
                     "' line without a Begin line before it; remove it and sign again");
    if (begins[0] < t.bom_units + 2 || !matches(t, begins[0] - 2, "\r\n"))
      fail(name,
           "the signature block does not follow the script's text after a CRLF, as signers "
           "write it; remove the block and sign again");
    l.pkcs7_der = read_block(t, s, begins[0], ends[0], end_unit, name);
    begin_unit = begins[0] - 2;
    if (!s.before_last_job && end_unit != t.units.size())
      fail(name,
           "there is text after the signature block, which its signature would not "
           "cover; remove the block (or move the text above it) and sign again");
  }
  // What would be hashed: the text without the BOM and the block.
  if (begin_unit - t.bom_units + (t.units.size() - end_unit) == 0)
    fail(name, "the script is empty: there is no text to sign");
  l.block_begin = byte_of(t, begin_unit);
  l.block_end = byte_of(t, end_unit);
  l.file_sha256 = hash(DigestAlg::sha256, file);
  return l;
}

Bytes digest(ByteView file, const Layout& layout, DigestAlg alg) {
  const Style& s = style(layout.family);
  const Text t = decode(file, layout.encoding, "<script>");
  const std::size_t b = unit_of(t, layout.block_begin);
  const std::size_t e = unit_of(t, layout.block_end);
  Hasher h(alg);
  if (s.wsh) {
    hash_units(h, t.units, t.bom_units, b);
    hash_units(h, t.units, e, t.units.size());
    const auto n = static_cast<std::uint32_t>((b - t.bom_units) + (t.units.size() - e));
    std::uint8_t count[4];
    put_le32(count, n);
    h.update(ByteView(count, 4));
  } else {
    hash_units(h, t.units, 0, b);  // the BOM, if any, as U+FEFF
  }
  return h.finish();
}

Bytes with_signature(ByteView file, const Layout& layout, ByteView pkcs7_der) {
  Bytes out(file.begin(), file.begin() + static_cast<std::ptrdiff_t>(layout.block_begin));
  const Bytes block = block_bytes(style(layout.family), pkcs7_der, layout.encoding);
  out.insert(out.end(), block.begin(), block.end());
  out.insert(out.end(), file.begin() + static_cast<std::ptrdiff_t>(layout.block_end), file.end());
  return out;
}

SignedContent signed_content(Family family) {
  const Style& s = style(family);
  return {std::string(kSpcSipInfoOid), sip_info_der(s.sip_version, s.sip_guid), {}, {}};
}

namespace {

Bytes read_whole(const std::filesystem::path& path, std::string_view name) {
  platform::ReadFile f(path);
  if (f.size() > kMaxScript)
    fail(name, "the script is " + std::to_string(f.size()) +
                   " bytes; tsign signs scripts of up to " + std::to_string(kMaxScript >> 20) +
                   " MiB");
  return f.read_at(0, static_cast<std::size_t>(f.size()));
}

class ScriptFile final : public SignableFile {
 public:
  ScriptFile(const std::filesystem::path& p, Layout layout)
      : SignableFile(p), name_(platform::to_utf8(p)), layout_(std::move(layout)) {}

  std::string_view format_name() const override { return style(layout_.family).name; }
  SignedContent signed_content() const override { return script::signed_content(layout_.family); }
  std::uint64_t size() const override { return layout_.file_size; }

  Bytes digest(DigestAlg alg) override {
    const Bytes file = current();
    return script::digest(file, layout_, alg);
  }

  std::optional<Bytes> existing_signature() override {
    if (!layout_.has_signature()) return std::nullopt;
    return layout_.pkcs7_der;
  }

  void check_can_nest(DigestAlg) override {
    fail(name_,
         "a script holds one signature, and Windows checks only that one: "
         "append-signature cannot add another to it. Sign it without append-signature: the "
         "new signature then replaces the old one");
  }

  Bytes write_signed(ByteView pkcs7_der, SignedOutput& out, DigestAlg alg) override {
    if (pkcs7_der.empty()) fail(name_, "cannot embed an empty signature");
    const Bytes file = current();
    const Bytes signed_file = with_signature(file, layout_, pkcs7_der);
    // The digest of what is written, from the written bytes themselves.
    const Layout written = parse(signed_file, layout_.family, name_);
    if (written.pkcs7_der.size() != pkcs7_der.size() ||
        !std::equal(pkcs7_der.begin(), pkcs7_der.end(), written.pkcs7_der.begin()))
      fail(name_, "the signed script does not read back with its signature");
    Bytes d = script::digest(signed_file, written, alg);
    out.write(signed_file);
    return d;
  }

 private:
  // The file's bytes, checked to be those parsed at open.
  Bytes current() const {
    Bytes file = read_whole(path(), name_);
    if (file.size() != layout_.file_size || hash(DigestAlg::sha256, file) != layout_.file_sha256)
      fail(name_, "the file changed while it was being signed");
    return file;
  }

  std::string name_;
  Layout layout_;
};

}  // namespace

std::unique_ptr<SignableFile> open(const std::filesystem::path& path, Family family) {
  const std::string name = platform::to_utf8(path);
  const Bytes file = read_whole(path, name);
  Layout layout = parse(file, family, name);
  return std::make_unique<ScriptFile>(path, std::move(layout));
}

}  // namespace tsign::formats::script
