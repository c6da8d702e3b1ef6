#include "hsm/signer.hpp"

#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/rsa.h>

#include "hsm/openssl_handles.hpp"

namespace hbsd::hsm {

std::vector<unsigned char> ecdsa_der_to_raw(std::span<const unsigned char> der, size_t half) {
    const unsigned char* p = der.data();
    EcdsaSig sig(d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(der.size())));
    if (!sig || p != der.data() + der.size()) return {};
    const BIGNUM* r = nullptr;
    const BIGNUM* s = nullptr;
    ECDSA_SIG_get0(sig.get(), &r, &s);
    std::vector<unsigned char> raw(2 * half);
    if (BN_bn2binpad(r, raw.data(), static_cast<int>(half)) < 0 ||
        BN_bn2binpad(s, raw.data() + half, static_cast<int>(half)) < 0)
        return {};
    return raw;
}

std::vector<unsigned char> sign_digest(EVP_PKEY* key, Mechanism mechanism,
                                       std::span<const unsigned char> digest) {
    EvpPkeyCtx ctx(EVP_PKEY_CTX_new(key, nullptr));
    if (!ctx || EVP_PKEY_sign_init(ctx.get()) != 1) return {};
    switch (mechanism) {
        case Mechanism::rsa_pkcs1_sha256:
            if (EVP_PKEY_CTX_set_rsa_padding(ctx.get(), RSA_PKCS1_PADDING) != 1 ||
                EVP_PKEY_CTX_set_signature_md(ctx.get(), EVP_sha256()) != 1)
                return {};
            break;
        case Mechanism::rsa_pss_sha256:
            if (EVP_PKEY_CTX_set_rsa_padding(ctx.get(), RSA_PKCS1_PSS_PADDING) != 1 ||
                EVP_PKEY_CTX_set_signature_md(ctx.get(), EVP_sha256()) != 1 ||
                EVP_PKEY_CTX_set_rsa_mgf1_md(ctx.get(), EVP_sha256()) != 1 ||
                EVP_PKEY_CTX_set_rsa_pss_saltlen(ctx.get(), RSA_PSS_SALTLEN_DIGEST) != 1)
                return {};
            break;
        case Mechanism::ecdsa_sha256:
            if (EVP_PKEY_CTX_set_signature_md(ctx.get(), EVP_sha256()) != 1) return {};
            break;
    }
    size_t len = 0;
    if (EVP_PKEY_sign(ctx.get(), nullptr, &len, digest.data(), digest.size()) != 1) return {};
    std::vector<unsigned char> out(len);
    if (EVP_PKEY_sign(ctx.get(), out.data(), &len, digest.data(), digest.size()) != 1) return {};
    out.resize(len);
    if (mechanism != Mechanism::ecdsa_sha256) return out;
    const int bits = EVP_PKEY_get_bits(key);
    if (bits <= 0) return {};
    return ecdsa_der_to_raw(out, (static_cast<size_t>(bits) + 7) / 8);
}

}  // namespace hbsd::hsm
