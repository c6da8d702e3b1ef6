// Move-only owners of the OpenSSL handles hsm/ uses; each frees its handle in a noexcept
// destructor, so no path (including an exception) leaks or double-frees one.
#pragma once

#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include <memory>

namespace hbsd::hsm {

template <typename T, void (*Free)(T*)>
struct OpensslFree {
    void operator()(T* p) const noexcept { Free(p); }
};

using EvpPkey = std::unique_ptr<EVP_PKEY, OpensslFree<EVP_PKEY, EVP_PKEY_free>>;
using EvpPkeyCtx = std::unique_ptr<EVP_PKEY_CTX, OpensslFree<EVP_PKEY_CTX, EVP_PKEY_CTX_free>>;
using X509Ptr = std::unique_ptr<X509, OpensslFree<X509, X509_free>>;
using EcdsaSig = std::unique_ptr<ECDSA_SIG, OpensslFree<ECDSA_SIG, ECDSA_SIG_free>>;

}  // namespace hbsd::hsm
