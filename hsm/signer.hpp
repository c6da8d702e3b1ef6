// One signature over a SHA-256 digest with a token-held key, through libp11's EVP_PKEY.
#pragma once

#include <openssl/evp.h>

#include <span>
#include <vector>

#include "hsm/token_manager.hpp"

namespace hbsd::hsm {

// Signs with libp11's EVP_PKEY for a private key. On failure returns an empty vector and
// leaves libp11's report in the OpenSSL error queue (see errors.hpp).
//  rsa_pkcs1_sha256: OpenSSL wraps the digest in the SHA-256 DigestInfo and libp11 calls
//                    C_Sign with CKM_RSA_PKCS.
//  rsa_pss_sha256:   salt length = digest length (32), MGF1-SHA-256, CKM_RSA_PKCS_PSS.
//  ecdsa_sha256:     libp11 calls CKM_ECDSA, which yields r||s; OpenSSL hands it back as DER,
//                    converted here to r||s again with each half padded to the order size.
std::vector<unsigned char> sign_digest(EVP_PKEY* key, Mechanism mechanism,
                                       std::span<const unsigned char> digest);

// DER ECDSA-Sig-Value -> r||s, each `half` bytes; empty when malformed or too long.
std::vector<unsigned char> ecdsa_der_to_raw(std::span<const unsigned char> der, size_t half);

}  // namespace hbsd::hsm
