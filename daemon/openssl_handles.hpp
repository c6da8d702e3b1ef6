// Move-only owners of the OpenSSL handles the daemon uses (handlers, dev mode); each frees its
// handle in a noexcept destructor. Plus lowercase hex, the form the contract uses for digests.
#pragma once

#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "hsm/openssl_handles.hpp"

#include <memory>
#include <span>
#include <string>

namespace hbsd::daemon {

// The owner template and the handles hsm/ already has are reused, not declared twice.
using hsm::EvpPkey;
using hsm::OpensslFree;
using hsm::X509Ptr;
using EvpMdCtx = std::unique_ptr<EVP_MD_CTX, OpensslFree<EVP_MD_CTX, EVP_MD_CTX_free>>;
using X509NamePtr = std::unique_ptr<X509_NAME, OpensslFree<X509_NAME, X509_NAME_free>>;
using X509ExtPtr =
    std::unique_ptr<X509_EXTENSION, OpensslFree<X509_EXTENSION, X509_EXTENSION_free>>;
using Bignum = std::unique_ptr<BIGNUM, OpensslFree<BIGNUM, BN_free>>;

}  // namespace hbsd::daemon
