// Windows app packages and bundles: Microsoft "App package format" and "AppxBlockMap.xml schema"
// for the parts and the block map; the signature's place, its Override and the tagged digest blob
// follow osslsigncode's appx.c, as appx.hpp's header describes. The few XML documents read here
// go through a small strict reader (no DTDs, no entities but the five predefined and character
// references): MinGW-w64 has no packaged expat for the Windows build, and only element names and
// attributes are needed.
#include "formats/appx.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <map>

#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/pkcs7.h>
#include <openssl/x509.h>

#include "common/error.hpp"
#include "common/ossl.hpp"
#include "common/text.hpp"
#include "formats/spc_data.hpp"
#include "platform/platform.hpp"

namespace tsign::formats::appx {

namespace {

constexpr std::uint64_t kMaxXml = 8u << 20;         // manifests and content types
constexpr std::uint64_t kMaxBlockMap = 256u << 20;  // 32 bytes of hash per 64 KiB block
constexpr std::uint64_t kMaxSignature = 64u << 20;
constexpr std::uint64_t kBlock = 64u << 10;
constexpr std::uint32_t kFourGiB32 = 0xFFFFFFFF;
constexpr long kSipVersion = 0x01010000;
constexpr SipGuid kAppxGuid = {0x4B, 0xDF, 0xC5, 0x0A, 0x07, 0xCE, 0xE2, 0x4D,
                               0xB7, 0x6E, 0x23, 0xC8, 0x39, 0xA0, 0x9F, 0xD1};
constexpr SipGuid kBundleGuid = {0xB3, 0x58, 0x5F, 0x0F, 0xDE, 0xAA, 0x9A, 0x4B,
                                 0xA4, 0x34, 0x95, 0x74, 0x2D, 0x92, 0xEC, 0xEB};

// ---- A small strict XML reader: elements and attributes, for documents of a few MiB.

struct Element {
  std::string name;  // local name (prefix dropped)
  std::map<std::string, std::string> attrs;
  int depth = 0;  // 0 for the root
};

class XmlError {};

void append_utf8(std::string& out, std::uint32_t cp) {
  if (cp == 0 || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) throw XmlError{};
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

std::string decode_text(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size();) {
    if (s[i] == '<') throw XmlError{};
    if (s[i] != '&') {
      out += s[i++];
      continue;
    }
    const std::size_t semi = s.find(';', i);
    if (semi == std::string_view::npos || semi - i > 12) throw XmlError{};
    const std::string_view ent = s.substr(i + 1, semi - i - 1);
    if (ent == "lt")
      out += '<';
    else if (ent == "gt")
      out += '>';
    else if (ent == "amp")
      out += '&';
    else if (ent == "quot")
      out += '"';
    else if (ent == "apos")
      out += '\'';
    else if (ent.size() > 1 && ent[0] == '#') {
      const bool hexa = ent[1] == 'x';
      const std::string_view digits = ent.substr(hexa ? 2 : 1);
      if (digits.empty()) throw XmlError{};
      std::uint32_t cp = 0;
      for (char c : digits) {
        int v = (c >= '0' && c <= '9')           ? c - '0'
                : hexa && (c >= 'a' && c <= 'f') ? c - 'a' + 10
                : hexa && (c >= 'A' && c <= 'F') ? c - 'A' + 10
                                                 : -1;
        if (v < 0 || cp > 0x10FFFF) throw XmlError{};
        cp = cp * (hexa ? 16 : 10) + static_cast<std::uint32_t>(v);
      }
      append_utf8(out, cp);
    } else {
      throw XmlError{};
    }
    i = semi + 1;
  }
  return out;
}

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

// Calls `on_element` for each start tag, in document order. Throws XmlError when the document
// is not well-formed in the ways that matter here, or uses a DTD.
template <class Fn>
void parse_xml(std::string_view doc, Fn&& on_element) {
  if (doc.size() >= 3 && doc.substr(0, 3) == "\xEF\xBB\xBF") doc.remove_prefix(3);
  std::vector<std::string> open;
  bool root_seen = false;
  std::size_t i = 0;
  while (i < doc.size()) {
    const std::size_t lt = doc.find('<', i);
    const std::string_view text = doc.substr(i, lt == std::string_view::npos ? doc.npos : lt - i);
    if (open.empty() && text.find_first_not_of(" \t\r\n") != std::string_view::npos)
      throw XmlError{};  // text outside the root element
    if (lt == std::string_view::npos) break;
    std::string_view rest = doc.substr(lt);
    auto skip_to = [&](std::string_view end) {
      const std::size_t e = doc.find(end, lt);
      if (e == std::string_view::npos) throw XmlError{};
      i = e + end.size();
    };
    if (rest.substr(0, 4) == "<!--") {
      skip_to("-->");
    } else if (rest.substr(0, 2) == "<?") {
      skip_to("?>");
    } else if (rest.substr(0, 9) == "<![CDATA[") {
      if (open.empty()) throw XmlError{};
      skip_to("]]>");
    } else if (rest.substr(0, 2) == "<!") {
      throw XmlError{};  // DOCTYPE and other declarations: not in a package's documents
    } else if (rest.substr(0, 2) == "</") {
      const std::size_t gt = doc.find('>', lt);
      if (gt == std::string_view::npos || open.empty()) throw XmlError{};
      std::string_view n = doc.substr(lt + 2, gt - lt - 2);
      while (!n.empty() && is_space(n.back())) n.remove_suffix(1);
      if (n != open.back()) throw XmlError{};
      open.pop_back();
      i = gt + 1;
    } else {
      if (open.empty() && root_seen) throw XmlError{};  // a second root
      std::size_t p = lt + 1;
      const std::size_t nb = p;
      while (p < doc.size() && !is_space(doc[p]) && doc[p] != '>' && doc[p] != '/') ++p;
      if (p == nb || p >= doc.size()) throw XmlError{};
      const std::string qname(doc.substr(nb, p - nb));
      Element el;
      const std::size_t colon = qname.find(':');
      el.name = colon == std::string::npos ? qname : qname.substr(colon + 1);
      el.depth = static_cast<int>(open.size());
      bool empty = false;
      for (;;) {
        while (p < doc.size() && is_space(doc[p])) ++p;
        if (p >= doc.size()) throw XmlError{};
        if (doc[p] == '>') {
          ++p;
          break;
        }
        if (doc[p] == '/') {
          if (p + 1 >= doc.size() || doc[p + 1] != '>') throw XmlError{};
          empty = true;
          p += 2;
          break;
        }
        const std::size_t ab = p;
        while (p < doc.size() && !is_space(doc[p]) && doc[p] != '=' && doc[p] != '>' &&
               doc[p] != '/')
          ++p;
        std::string aname(doc.substr(ab, p - ab));
        while (p < doc.size() && is_space(doc[p])) ++p;
        if (aname.empty() || p >= doc.size() || doc[p] != '=') throw XmlError{};
        ++p;
        while (p < doc.size() && is_space(doc[p])) ++p;
        if (p >= doc.size() || (doc[p] != '"' && doc[p] != '\'')) throw XmlError{};
        const char q = doc[p++];
        const std::size_t ve = doc.find(q, p);
        if (ve == std::string_view::npos) throw XmlError{};
        const std::size_t acolon = aname.find(':');
        if (acolon != std::string::npos && aname.substr(0, acolon) != "xmlns")
          aname = aname.substr(acolon + 1);
        if (!el.attrs.emplace(aname, decode_text(doc.substr(p, ve - p))).second) throw XmlError{};
        p = ve + 1;
      }
      root_seen = true;
      on_element(static_cast<const Element&>(el));
      if (!empty) open.push_back(qname);
      i = p;
    }
  }
  if (!open.empty() || !root_seen) throw XmlError{};
}

std::string as_text(const Bytes& b) {
  return std::string(b.begin(), b.end());
}

template <class Fn>
void parse_part(const Bytes& doc, std::string_view part, std::string_view name, Fn&& fn) {
  if (doc.size() >= 2 && ((doc[0] == 0xFF && doc[1] == 0xFE) || (doc[0] == 0xFE && doc[1] == 0xFF)))
    fail(name, std::string(part) +
                   " is UTF-16; tsign reads package documents in UTF-8, as MakeAppx "
                   "writes them");
  try {
    parse_xml(std::string_view(reinterpret_cast<const char*>(doc.data()), doc.size()), fn);
  } catch (const XmlError&) {
    fail(name, std::string(part) + " is not well-formed XML (or uses a DTD)");
  }
}

// ---- The block map.

// A zip item name as the block map writes it: percent-decoded, with backslashes.
std::string block_map_name(std::string_view zip_name) {
  std::string out;
  for (std::size_t i = 0; i < zip_name.size(); ++i) {
    const char c = zip_name[i];
    if (c == '%' && i + 2 < zip_name.size() &&
        std::isxdigit(static_cast<unsigned char>(zip_name[i + 1])) &&
        std::isxdigit(static_cast<unsigned char>(zip_name[i + 2]))) {
      out += static_cast<char>(std::stoi(std::string(zip_name.substr(i + 1, 2)), nullptr, 16));
      i += 2;
    } else {
      out += c == '/' ? '\\' : c;
    }
  }
  return out;
}

struct BlockMapFile {
  std::string name;
  std::uint64_t size = 0, lfh_size = 0;
  std::vector<Bytes> hashes;
};

std::optional<std::uint64_t> to_u64(const std::string& s) {
  if (s.empty() || s.size() > 19 || s.find_first_not_of("0123456789") != std::string::npos)
    return std::nullopt;
  return std::stoull(s);
}

DigestAlg check_block_map(Source& src, const zip::Archive& a, const zip::Entry& bm_entry,
                          std::string_view name) {
  const Bytes doc = zip::read_entry_all(src, bm_entry, name, kMaxBlockMap);
  std::optional<DigestAlg> alg;
  std::vector<BlockMapFile> files;
  std::string bad;
  parse_part(doc, kBlockMapPart, name, [&](const Element& el) {
    if (!bad.empty()) return;
    if (el.depth == 0) {
      if (el.name != "BlockMap") bad = "its root element is not BlockMap";
      auto m = el.attrs.find("HashMethod");
      const std::string method = m == el.attrs.end() ? "" : m->second;
      if (method == "http://www.w3.org/2001/04/xmlenc#sha256")
        alg = DigestAlg::sha256;
      else if (method == "http://www.w3.org/2001/04/xmldsig-more#sha384")
        alg = DigestAlg::sha384;
      else if (method == "http://www.w3.org/2001/04/xmlenc#sha512")
        alg = DigestAlg::sha512;
      else
        bad = "its HashMethod \"" + method + "\" is not SHA-256, SHA-384 or SHA-512";
    } else if (el.depth == 1 && el.name == "File") {
      BlockMapFile f;
      auto n = el.attrs.find("Name");
      auto s = el.attrs.find("Size");
      auto l = el.attrs.find("LfhSize");
      std::optional<std::uint64_t> size, lfh;
      if (s != el.attrs.end()) size = to_u64(s->second);
      if (l != el.attrs.end()) lfh = to_u64(l->second);
      if (n == el.attrs.end() || !size || !lfh) {
        bad = "a File element lacks a valid Name, Size or LfhSize";
        return;
      }
      f.name = n->second;
      f.size = *size;
      f.lfh_size = *lfh;
      files.push_back(std::move(f));
    } else if (el.depth == 2 && el.name == "Block") {
      auto h = el.attrs.find("Hash");
      std::optional<Bytes> hash;
      if (h != el.attrs.end()) hash = base64_decode(h->second);
      if (files.empty() || !hash) {
        bad = "a Block element lacks a valid Hash";
        return;
      }
      files.back().hashes.push_back(std::move(*hash));
    }
  });
  if (!bad.empty()) fail(name, std::string(kBlockMapPart) + ": " + bad);
  if (!alg) fail(name, std::string(kBlockMapPart) + " has no HashMethod");

  // Part names are case-insensitive (Open Packaging Conventions): two zip items that name one
  // part would let one of them escape the block map's check.
  std::map<std::string, const zip::Entry*> by_name;
  for (const auto& e : a.entries)
    if (!by_name.emplace(ascii_lower(block_map_name(e.name)), &e).second)
      fail(name, "two zip items name the part \"" + block_map_name(e.name) +
                     "\" (names differ only in case or percent-encoding)");
  std::map<std::string, bool> listed;
  for (const auto& f : files) {
    const std::string where = std::string(kBlockMapPart) + " lists \"" + f.name + "\"";
    if (!listed.emplace(ascii_lower(f.name), true).second) fail(name, where + " twice");
    auto it = by_name.find(ascii_lower(f.name));
    if (it == by_name.end())
      fail(name, where +
                     ", which is not in the package; the package was changed after it was "
                     "built: build it again with MakeAppx");
    const zip::Entry& e = *it->second;
    if (e.uncompressed_size != f.size || e.local_header_size != f.lfh_size)
      fail(name, where + " with Size " + std::to_string(f.size) + " and LfhSize " +
                     std::to_string(f.lfh_size) + ", but the package's file has " +
                     std::to_string(e.uncompressed_size) + " bytes and a " +
                     std::to_string(e.local_header_size) +
                     "-byte local header; the package was changed after it was built");
    const std::uint64_t blocks = (f.size + kBlock - 1) / kBlock;
    if (f.hashes.size() != blocks)
      fail(name, where + " with " + std::to_string(f.hashes.size()) + " blocks, but its " +
                     std::to_string(f.size) + " bytes make " + std::to_string(blocks));
    std::size_t index = 0;
    std::uint64_t in_block = 0;
    std::optional<Hasher> h;
    auto finish_block = [&] {
      if (h->finish() != f.hashes[index])
        fail(name, "the content of \"" + e.name + "\" does not match " +
                       std::string(kBlockMapPart) + " (block " + std::to_string(index + 1) +
                       "); the package was changed after it was built: build it again with "
                       "MakeAppx");
      ++index;
      h.reset();
      in_block = 0;
    };
    zip::read_entry(src, e, name, [&](ByteView piece) {
      while (!piece.empty()) {
        if (!h) h.emplace(*alg);
        const auto n =
            static_cast<std::size_t>(std::min<std::uint64_t>(piece.size(), kBlock - in_block));
        h->update(piece.subspan(0, n));
        in_block += n;
        piece = piece.subspan(n);
        if (in_block == kBlock) finish_block();
      }
    });
    if (h) finish_block();
  }
  for (const auto& e : a.entries) {
    if (e.name == kBlockMapPart || e.name == kContentTypesPart || e.name == kSignaturePart ||
        e.name == kCodeIntegrityPart)
      continue;
    if (!listed.count(ascii_lower(block_map_name(e.name))))
      fail(name, "\"" + e.name + "\" is in the package but not in " + std::string(kBlockMapPart) +
                     "; the package was changed after it was built: build it again with MakeAppx");
  }
  return *alg;
}

// ---- Publisher names.

struct Ava {
  std::string oid;
  std::string value;
};
using Rdn = std::vector<Ava>;

std::optional<std::string> attribute_oid(std::string_view key) {
  static const std::array<std::pair<std::string_view, std::string_view>, 20> kNames{{
      {"CN", "2.5.4.3"},
      {"SN", "2.5.4.4"},
      {"SERIALNUMBER", "2.5.4.5"},
      {"C", "2.5.4.6"},
      {"L", "2.5.4.7"},
      {"S", "2.5.4.8"},
      {"ST", "2.5.4.8"},
      {"STREET", "2.5.4.9"},
      {"O", "2.5.4.10"},
      {"OU", "2.5.4.11"},
      {"T", "2.5.4.12"},
      {"TITLE", "2.5.4.12"},
      {"POSTALCODE", "2.5.4.17"},
      {"G", "2.5.4.42"},
      {"GIVENNAME", "2.5.4.42"},
      {"I", "2.5.4.43"},
      {"INITIALS", "2.5.4.43"},
      {"E", "1.2.840.113549.1.9.1"},
      {"EMAIL", "1.2.840.113549.1.9.1"},
      {"DC", "0.9.2342.19200300.100.1.25"},
  }};
  for (const auto& [n, oid] : kNames)
    if (iequals(key, n)) return std::string(oid);
  std::string_view k = key;
  if (k.size() > 4 && iequals(k.substr(0, 4), "OID.")) k.remove_prefix(4);
  if (!k.empty() && k.find_first_not_of("0123456789.") == std::string_view::npos &&
      k.front() != '.' && k.back() != '.' && k.find("..") == std::string_view::npos)
    return std::string(k);
  return std::nullopt;
}

// The Publisher string as RDNs in string order; nullopt with `why` when it cannot be read.
std::optional<std::vector<Rdn>> parse_dn(std::string_view s, std::string& why) {
  std::vector<Rdn> out;
  Rdn rdn;
  std::size_t i = 0;
  auto skip_blanks = [&] {
    while (i < s.size() && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r' || s[i] == '\n')) ++i;
  };
  for (;;) {
    skip_blanks();
    const std::size_t kb = i;
    while (i < s.size() && s[i] != '=' && s[i] != ',' && s[i] != ';' && s[i] != '+') ++i;
    if (i >= s.size() || s[i] != '=') {
      why = "\"" + std::string(trim(s.substr(kb, i - kb))) + "\" is not TYPE=value";
      return std::nullopt;
    }
    const std::string key(trim(s.substr(kb, i - kb)));
    auto oid = attribute_oid(key);
    if (!oid) {
      why = "unknown attribute type \"" + key + "\"";
      return std::nullopt;
    }
    ++i;
    skip_blanks();
    std::string value;
    if (i < s.size() && s[i] == '#') {
      why = "a value in hex (#...) form; write it as text";
      return std::nullopt;
    }
    if (i < s.size() && s[i] == '"') {
      ++i;
      for (;;) {
        if (i >= s.size()) {
          why = "an unterminated quoted value";
          return std::nullopt;
        }
        if (s[i] == '"' && i + 1 < s.size() && s[i + 1] == '"') {
          value += '"';
          i += 2;
        } else if (s[i] == '\\' && i + 1 < s.size()) {
          value += s[i + 1];
          i += 2;
        } else if (s[i] == '"') {
          ++i;
          break;
        } else {
          value += s[i++];
        }
      }
      skip_blanks();
    } else {
      while (i < s.size() && s[i] != ',' && s[i] != ';' && s[i] != '+') {
        if (s[i] == '\\' && i + 1 < s.size()) {
          if (i + 2 < s.size() && std::isxdigit(static_cast<unsigned char>(s[i + 1])) &&
              std::isxdigit(static_cast<unsigned char>(s[i + 2]))) {
            value += static_cast<char>(std::stoi(std::string(s.substr(i + 1, 2)), nullptr, 16));
            i += 3;
          } else {
            value += s[i + 1];
            i += 2;
          }
        } else {
          value += s[i++];
        }
      }
    }
    rdn.push_back({*oid, std::string(trim(value))});
    if (i >= s.size()) {
      out.push_back(std::move(rdn));
      return out;
    }
    if (s[i] != '+') {
      if (s[i] != ',' && s[i] != ';') {
        why = "unexpected text after a quoted value";
        return std::nullopt;
      }
      out.push_back(std::move(rdn));
      rdn.clear();
    }
    ++i;
  }
}

std::vector<Rdn> subject_rdns(X509_NAME* n) {
  std::vector<Rdn> out;
  int last_set = -1;
  for (int k = 0; k < X509_NAME_entry_count(n); ++k) {
    X509_NAME_ENTRY* ne = X509_NAME_get_entry(n, k);
    char oid[128];
    OBJ_obj2txt(oid, sizeof oid, X509_NAME_ENTRY_get_object(ne), 1);
    unsigned char* utf8 = nullptr;
    const int len = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(ne));
    std::string value = len >= 0 ? std::string(reinterpret_cast<char*>(utf8), len) : std::string();
    OPENSSL_free(utf8);
    if (X509_NAME_ENTRY_set(ne) != last_set) out.emplace_back();
    last_set = X509_NAME_ENTRY_set(ne);
    out.back().push_back({oid, std::string(trim(value))});
  }
  return out;
}

bool same_rdn(Rdn a, Rdn b) {
  if (a.size() != b.size()) return false;
  auto by_oid = [](const Ava& x, const Ava& y) { return x.oid < y.oid; };
  std::sort(a.begin(), a.end(), by_oid);
  std::sort(b.begin(), b.end(), by_oid);
  for (std::size_t i = 0; i < a.size(); ++i)
    if (a[i].oid != b[i].oid || !iequals(a[i].value, b[i].value)) return false;
  return true;
}

std::string subject_text(X509_NAME* n) {
  BioPtr b(BIO_new(BIO_s_mem()));
  const unsigned long flags =
      (XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB & ~XN_FLAG_SEP_MASK) | XN_FLAG_SEP_CPLUS_SPC;
  X509_NAME_print_ex(b.get(), n, 0, flags);
  char* data = nullptr;
  const long len = BIO_get_mem_data(b.get(), &data);
  return std::string(data, static_cast<std::size_t>(len));
}

// ---- The package.

std::string manifest_publisher(Source& src, const zip::Entry& e, bool bundle,
                               std::string_view name) {
  const Bytes doc = zip::read_entry_all(src, e, name, kMaxXml);
  const std::string_view root = bundle ? "Bundle" : "Package";
  std::optional<std::string> publisher;
  bool root_ok = false;
  parse_part(doc, e.name, name, [&](const Element& el) {
    if (el.depth == 0) root_ok = el.name == root;
    if (el.depth == 1 && el.name == "Identity" && !publisher) {
      auto p = el.attrs.find("Publisher");
      if (p != el.attrs.end()) publisher = p->second;
    }
  });
  if (!root_ok) fail(name, e.name + "'s root element is not " + std::string(root));
  if (!publisher || publisher->empty())
    fail(name, e.name + " has no <Identity Publisher=\"...\">; the package cannot be signed");
  return *publisher;
}

Bytes read_signature(Source& src, const zip::Entry& e, std::string_view name) {
  Bytes p7x = zip::read_entry_all(src, e, name, kMaxSignature);
  if (p7x.size() < 4 || !std::equal(p7x.begin(), p7x.begin() + 4, "PKCX"))
    fail(name, std::string(kSignaturePart) + " does not start with PKCX; remove it and sign again");
  const unsigned char* p = p7x.data() + 4;
  PKCS7Ptr p7(d2i_PKCS7(nullptr, &p, static_cast<long>(p7x.size() - 4)));
  if (!p7 || p != p7x.data() + p7x.size()) {
    ERR_clear_error();
    fail(name, std::string(kSignaturePart) + " does not hold one DER PKCS#7 signature");
  }
  return Bytes(p7x.begin() + 4, p7x.end());
}

// The entry the rewritten [Content_Types].xml gets: its flags (a data descriptor stays one, as
// signing tools keep it), deflated (even if it was stored), no extra field.
zip::Entry new_content_types_entry(const zip::Entry& old, ByteView content, ByteView deflated) {
  zip::Entry e = old;
  e.method = zip::kDeflated;
  e.crc = zip::crc32(content);
  e.uncompressed_size = content.size();
  e.compressed_size = deflated.size();
  e.z64_usize = e.z64_csize = false;
  return e;
}

Bytes hash_entry(Source& src, const zip::Entry& e, DigestAlg alg, std::string_view name) {
  Hasher h(alg);
  zip::read_entry(src, e, name, [&](ByteView b) { h.update(b); });
  return h.finish();
}

// One pass over the package as signed: the digest blob, and with `out` the signed file.
Bytes pass(Source& src, const Layout& l, DigestAlg alg, std::string_view name, const Bytes* p7x,
           SignedOutput* out) {
  if (alg != l.alg)
    fail(name, "the package's block map hashes with " + std::string(digest_name(l.alg)) +
                   ", and a package must be signed with its block map's algorithm: sign it with "
                   "--file-digest " +
                   ascii_lower(digest_name(l.alg)) + " (or build it with MakeAppx /h " +
                   std::string(digest_name(alg)) + ")");
  const zip::Archive& a = l.archive;
  Hasher records(alg);
  Bytes cd;
  std::uint64_t pos = 0;
  auto emit = [&](ByteView b, bool hashed) {
    if (hashed) records.update(b);
    if (out) out->write(b);
    pos += b.size();
  };
  Bytes deflated_ct;
  if (!l.new_content_types.empty()) deflated_ct = zip::deflate(l.new_content_types);
  const zip::Entry* ct_entry = &a.entries[l.content_types];
  for (std::size_t i = 0; i < a.entries.size(); ++i) {
    if (l.signature && *l.signature == i) continue;
    const zip::Entry& e = a.entries[i];
    const std::uint64_t at = pos;
    if (&e == ct_entry && !l.new_content_types.empty()) {
      const zip::Entry ne = new_content_types_entry(e, l.new_content_types, deflated_ct);
      emit(zip::local_header(ne), true);
      emit(deflated_ct, true);
      if (ne.flags & zip::kDescriptorFlag) emit(zip::data_descriptor(ne, a.zip64), true);
      const Bytes rec = zip::central_record(ne, at);
      cd.insert(cd.end(), rec.begin(), rec.end());
    } else {
      Bytes buf(static_cast<std::size_t>(
          std::min<std::uint64_t>(kBlock * 16, e.record_end - e.local_offset)));
      for (std::uint64_t off = e.local_offset; off < e.record_end;) {
        const auto n =
            static_cast<std::size_t>(std::min<std::uint64_t>(buf.size(), e.record_end - off));
        std::span<std::uint8_t> piece(buf.data(), n);
        src.read_at(off, piece);
        emit(piece, true);
        off += n;
      }
      const Bytes rec = zip::central_record(e, at);
      cd.insert(cd.end(), rec.begin(), rec.end());
    }
  }
  const std::size_t count = a.entries.size() - (l.signature ? 1 : 0);
  Hasher cd_hash(alg);
  cd_hash.update(cd);
  cd_hash.update(zip::end_records(a, count, pos, cd.size()));

  Bytes blob = {'A', 'P', 'P', 'X'};
  auto tag = [&](const char* t, const Bytes& h) {
    blob.insert(blob.end(), t, t + 4);
    blob.insert(blob.end(), h.begin(), h.end());
  };
  tag("AXPC", records.finish());
  tag("AXCD", cd_hash.finish());
  tag("AXCT", l.new_content_types.empty() ? hash_entry(src, *ct_entry, alg, name)
                                          : hash(alg, l.new_content_types));
  tag("AXBM", hash_entry(src, a.entries[l.block_map], alg, name));
  if (l.code_integrity) tag("AXCI", hash_entry(src, a.entries[*l.code_integrity], alg, name));

  if (out) {
    zip::Entry s;
    s.name = std::string(kSignaturePart);
    s.creator_version = 0x2D;
    s.needed_version = s.local_version = 0x14;
    s.method = zip::kDeflated;
    s.mod_time = s.local_time = ct_entry->mod_time;
    s.mod_date = s.local_date = ct_entry->mod_date;
    s.crc = zip::crc32(*p7x);
    s.uncompressed_size = p7x->size();
    const Bytes data = zip::deflate(*p7x);
    s.compressed_size = data.size();
    const std::uint64_t at = pos;
    emit(zip::local_header(s), false);
    emit(data, false);
    const Bytes rec = zip::central_record(s, at);
    cd.insert(cd.end(), rec.begin(), rec.end());
    const std::uint64_t cd_at = pos;
    if (!a.zip64 && cd_at + cd.size() >= kFourGiB32)
      fail(name,
           "the signed package would need ZIP64 records, which the package does not have; "
           "build it again with MakeAppx");
    emit(cd, false);
    emit(zip::end_records(a, count + 1, cd_at, cd.size()), false);
  }
  return blob;
}

class AppxFile final : public SignableFile {
 public:
  AppxFile(const std::filesystem::path& p, Layout layout)
      : SignableFile(p), name_(platform::to_utf8(p)), layout_(std::move(layout)) {}

  std::string_view format_name() const override { return layout_.bundle ? "appxbundle" : "appx"; }
  SignedContent signed_content() const override {
    SignedContent c{std::string(kSpcSipInfoOid), sip_info(layout_.bundle), {}, {}};
    c.digest_is_blob = true;
    return c;
  }
  std::uint64_t size() const override { return layout_.archive.file_size; }

  Bytes digest(DigestAlg alg) override {
    platform::ReadFile f(path());
    FileSource src(f);
    return package_digest(src, layout_, alg, name_);
  }

  std::optional<Bytes> existing_signature() override {
    if (layout_.pkcs7_der.empty()) return std::nullopt;
    return layout_.pkcs7_der;
  }

  void check_can_embed(std::uint64_t max_signature_bytes) const override {
    // Without ZIP64 records every offset is 32-bit; the signature's part (deflate adds at most
    // 5 bytes in 16 KiB), its headers and the longer content types must still fit.
    const std::uint64_t grows =
        max_signature_bytes + max_signature_bytes / 1000 + 4096 + layout_.new_content_types.size();
    if (!layout_.archive.zip64 && layout_.archive.file_size + grows >= kFourGiB32)
      fail(name_, "the package is " + std::to_string(layout_.archive.file_size) +
                      " bytes without ZIP64 records: with a signature (up to " +
                      std::to_string(max_signature_bytes) +
                      " bytes) it would pass 4 GiB; build it again with MakeAppx, which writes "
                      "ZIP64 records; nothing was requested for it");
  }

  void check_can_nest(DigestAlg) override {
    fail(name_,
         "an app package holds one signature, so append-signature cannot add another "
         "(signtool refuses /as for packages too); sign it without append-signature to "
         "replace its signature");
  }

  bool needs_signing_certificate() const override { return true; }

  void check_signing_certificate(ByteView leaf_der) const override {
    check_publisher(layout_.publisher, leaf_der, layout_.bundle, name_);
  }

  Bytes write_signed(ByteView pkcs7_der, SignedOutput& out, DigestAlg alg) override {
    platform::ReadFile f(path());
    FileSource src(f);
    return appx::write_signed(src, layout_, pkcs7_der, out, name_, alg);
  }

 private:
  std::string name_;
  Layout layout_;
};

}  // namespace

bool detect(Source& src) {
  try {
    if (!zip::looks_like_zip(src)) return false;
    // The central directory names the manifest; found by its bytes so that a malformed package
    // is still detected (and then refused with the reason) rather than called unsupported.
    const std::uint64_t size = src.size();
    std::array<std::uint8_t, 22> eocd{};
    src.read_at(size - eocd.size(), eocd);
    std::uint64_t cd_offset = le32(eocd.data() + 16), cd_size = le32(eocd.data() + 12);
    if ((cd_offset == 0xFFFFFFFF || cd_size == 0xFFFFFFFF) && size >= 22 + 20 + 56) {
      std::array<std::uint8_t, 56> rec{};
      src.read_at(size - 22 - 20 - 56, rec);
      cd_size = le32(rec.data() + 40) | (std::uint64_t{le32(rec.data() + 44)} << 32);
      cd_offset = le32(rec.data() + 48) | (std::uint64_t{le32(rec.data() + 52)} << 32);
    }
    if (cd_offset >= size || cd_size > size - cd_offset || cd_size > (64u << 20)) return false;
    Bytes cd(static_cast<std::size_t>(cd_size));
    src.read_at(cd_offset, cd);
    const std::string_view text(reinterpret_cast<const char*>(cd.data()), cd.size());
    return text.find(kManifestPart) != std::string_view::npos ||
           text.find(kBundleManifestPart) != std::string_view::npos;
  } catch (const Error&) {
    return false;
  }
}

Layout parse(Source& src, std::string_view name) {
  Layout l;
  l.archive = zip::read(src, name);
  const auto& es = l.archive.entries;
  auto index_of = [&](std::string_view part) -> std::optional<std::size_t> {
    for (std::size_t i = 0; i < es.size(); ++i)
      if (es[i].name == part) return i;
    return std::nullopt;
  };
  const auto bundle_manifest = index_of(kBundleManifestPart);
  const auto manifest = index_of(kManifestPart);
  l.bundle = bundle_manifest.has_value();
  if (!bundle_manifest && !manifest)
    fail(name,
         "a zip without AppxManifest.xml or AppxMetadata/AppxBundleManifest.xml: not an "
         "app package");
  const auto ct = index_of(kContentTypesPart);
  const auto bm = index_of(kBlockMapPart);
  if (!ct) fail(name, "the package has no [Content_Types].xml");
  if (!bm) fail(name, "the package has no AppxBlockMap.xml; build it with MakeAppx");
  l.content_types = *ct;
  l.block_map = *bm;
  l.code_integrity = index_of(kCodeIntegrityPart);
  // Not in the block map, but hashed into the signature: its data must be sound now, not only
  // when the digest is computed.
  if (l.code_integrity) zip::read_entry(src, es[*l.code_integrity], name, [](ByteView) {});
  l.signature = index_of(kSignaturePart);
  if (l.signature && *l.signature + 1 != es.size())
    fail(name, std::string(kSignaturePart) +
                   " is not the package's last record, where signing tools put it; the package "
                   "was rearranged after it was signed");

  l.alg = check_block_map(src, l.archive, es[l.block_map], name);
  l.publisher =
      manifest_publisher(src, es[l.bundle ? *bundle_manifest : *manifest], l.bundle, name);

  const Bytes ct_doc = zip::read_entry_all(src, es[l.content_types], name, kMaxXml);
  bool types_root = false;
  parse_part(ct_doc, kContentTypesPart, name, [&](const Element& el) {
    types_root = types_root || (el.depth == 0 && el.name == "Types");
  });
  if (!types_root) fail(name, "[Content_Types].xml's root element is not Types");
  const std::string text = as_text(ct_doc);
  if (text.find(kSignatureOverride) == std::string::npos) {
    const std::size_t close = text.find("</Types>");
    if (close == std::string::npos)
      fail(name, "[Content_Types].xml has no </Types> to add the signature's Override before");
    std::string updated = text;
    updated.insert(close, kSignatureOverride);
    l.new_content_types.assign(updated.begin(), updated.end());
  }
  if (l.signature) l.pkcs7_der = read_signature(src, es[*l.signature], name);
  return l;
}

Bytes package_digest(Source& src, const Layout& l, DigestAlg alg, std::string_view name) {
  if (src.size() != l.archive.file_size) fail(name, "the file changed since it was opened");
  return pass(src, l, alg, name, nullptr, nullptr);
}

Bytes write_signed(Source& src, const Layout& l, ByteView pkcs7_der, SignedOutput& out,
                   std::string_view name, DigestAlg alg) {
  if (pkcs7_der.empty()) fail(name, "cannot embed an empty signature");
  if (src.size() != l.archive.file_size || !(zip::read(src, name) == l.archive))
    fail(name, "the file changed while it was being signed");
  Bytes p7x = {'P', 'K', 'C', 'X'};
  p7x.insert(p7x.end(), pkcs7_der.begin(), pkcs7_der.end());
  return pass(src, l, alg, name, &p7x, &out);
}

Bytes sip_info(bool bundle) {
  return sip_info_der(kSipVersion, bundle ? kBundleGuid : kAppxGuid);
}

void check_publisher(std::string_view publisher, ByteView leaf_der, bool bundle,
                     std::string_view name) {
  const unsigned char* p = leaf_der.data();
  X509Ptr leaf(d2i_X509(nullptr, &p, static_cast<long>(leaf_der.size())));
  if (!leaf) {
    ERR_clear_error();
    fail(name, "the signing certificate cannot be read");
  }
  X509_NAME* subject = X509_get_subject_name(leaf.get());
  const std::string manifest = bundle ? "AppxMetadata/AppxBundleManifest.xml" : "AppxManifest.xml";
  const std::string subject_str = subject_text(subject);
  const std::string how =
      "; Windows installs a package only when they are equal. Set the Publisher attribute of "
      "<Identity> in " +
      manifest +
      " to the certificate's subject, exactly as the certificate profile shows it (for Artifact "
      "Signing: the subject of the certificate profile), and build the package again. Nothing "
      "was signed";
  std::string why;
  auto rdns = parse_dn(publisher, why);
  if (!rdns)
    fail(name, "the package's Publisher \"" + std::string(publisher) + "\" (" + manifest +
                   ") is not a distinguished name: " + why + how);
  std::reverse(rdns->begin(), rdns->end());
  const auto subject_rdns_ = subject_rdns(subject);
  bool same = rdns->size() == subject_rdns_.size();
  for (std::size_t i = 0; same && i < rdns->size(); ++i)
    same = same_rdn((*rdns)[i], subject_rdns_[i]);
  if (!same)
    fail(name, "the package's Publisher \"" + std::string(publisher) + "\" (" + manifest +
                   ") does not match the signing certificate's subject \"" + subject_str + "\"" +
                   how);
}

bool detect(platform::ReadFile& file) {
  FileSource src(file);
  return appx::detect(static_cast<Source&>(src));
}

std::unique_ptr<SignableFile> open(const std::filesystem::path& path) {
  platform::ReadFile f(path);
  FileSource src(f);
  Layout layout = appx::parse(src, platform::to_utf8(path));
  return std::make_unique<AppxFile>(path, std::move(layout));
}

}  // namespace tsign::formats::appx
