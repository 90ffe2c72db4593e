// unique_ptr owners for OpenSSL objects, so no path leaks one.
#pragma once

#include <memory>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pkcs7.h>
#include <openssl/x509.h>

namespace tsign {

template <typename T, void (*F)(T*)>
struct OsslDeleter {
  void operator()(T* p) const { F(p); }
};
template <typename T, void (*F)(T*)>
using OsslPtr = std::unique_ptr<T, OsslDeleter<T, F>>;

using X509Ptr = OsslPtr<X509, X509_free>;
using PKCS7Ptr = OsslPtr<PKCS7, PKCS7_free>;
using EvpPkeyPtr = OsslPtr<EVP_PKEY, EVP_PKEY_free>;
using BioPtr = OsslPtr<BIO, BIO_free_all>;
using X509StorePtr = OsslPtr<X509_STORE, X509_STORE_free>;

inline X509Ptr clone(const X509Ptr& x) {
  X509_up_ref(x.get());
  return X509Ptr(x.get());
}

}  // namespace tsign
