// Unsigned security catalogs made at test time, as MakeCat writes them (a PKCS #7 SignedData of
// a certificate trust list with no SignerInfo; the structure is described in
// src/formats/cat.hpp), so no binary catalog is committed. Every byte is encoded by OpenSSL: the
// CTL templates of src/formats/cat.cpp and the entry templates in catalog.cpp.
// Link the object library tsign_test_catalog (tests/support/CMakeLists.txt).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace tsign::test {

using CatBytes = std::vector<std::uint8_t>;

// One file listed in a catalog: its name and its content (the entry holds the content's SHA-1,
// as MakeCat's version 1 catalogs do, in an SpcIndirectDataContent).
struct CatalogMember {
  std::string name;
  CatBytes content;
};

struct CatalogOptions {
  std::vector<CatalogMember> members = {{"hello.txt", {'h', 'i', '\n'}},
                                        {"readme.md", {'#', ' ', 'r', '\n'}}};
  // The SignedData's content type: the CTL's szOID_CTL, or another one for a refusal test.
  std::string content_type = "1.3.6.1.4.1.311.10.1";
  // SignerInfos to add: placeholders (no real signature) to test the refusal of several.
  int dummy_signers = 0;
  // The content's bytes instead of the generated CTL (empty: the CTL), for refusal tests.
  CatBytes content;
};

// DER of the catalog.
CatBytes make_catalog(const CatalogOptions& opts = {});

// DER of the certificate trust list alone (what the catalog's [0] EXPLICIT content holds).
CatBytes make_ctl(const CatalogOptions& opts = {});

}  // namespace tsign::test
