// The RSA-SHA256 and ECDSA-SHA256 SignatureMethod transforms of hbsd.
//
// xmlsec1 1.2.37 signs only with a private key it can read, and looks SignatureMethod up by
// href in its one global transform list (the per-context enabled list only filters that
// result), so a second klass with the same href can be used only if it comes first. Ours is
// registered before OpenSSL's and serves both directions:
// - sign: SHA-256 of the canonical SignedInfo that xmlsec feeds it, then the SignState's
//   Signer callback (the token), whose result is checked against the certificate's public
//   key before xmlsec base64-encodes it into SignatureValue;
// - verify: SHA-256 likewise, then OpenSSL's EVP_PKEY_verify with the public key xmlsec hands
//   it (from the KeyInfo certificate). ECDSA values are XML-DSig's raw r||s.
// Digests of References, C14N, base64 and KeyInfo stay xmlsec's and libxml2's.
#pragma once

#include <xmlsec/transforms.h>

#include <exception>
#include <vector>

#include "dsig/document.hpp"
#include "dsig/xmlsec.hpp"

namespace hbsd::dsig::detail {

// Handed to the transform through xmlSecTransformCtx::userData of the SignedInfo context.
struct SignState {
    const Signer* signer = nullptr;
    std::vector<unsigned char> signature;  // the raw SignatureValue, once signed
    std::exception_ptr error;              // what the callback (or our check) threw
};

xmlSecTransformId rsa_sha256_transform() noexcept;
xmlSecTransformId ecdsa_sha256_transform() noexcept;

// OpenSSL verification of a raw XML-DSig signature value over a SHA-256 digest.
bool verify_digest(EVP_PKEY* key, std::span<const unsigned char> digest,
                   std::span<const unsigned char> signature);

}  // namespace hbsd::dsig::detail
