// ENGINE is deprecated in OpenSSL 3, but it is the only way to reach libp11 0.4.12's RSA-PSS
// method (see pss_engine below); nothing else in hsm/ uses it.
#define OPENSSL_SUPPRESS_DEPRECATED
#include "hsm/signer.hpp"

#include <libp11.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/engine.h>
#include <openssl/rsa.h>

#include <utility>

#include "hsm/openssl_handles.hpp"

namespace hbsd::hsm {

namespace {

// With OpenSSL 3, EVP_PKEY_sign on libp11's RSA key does PSS padding in software and hands
// libp11 the padded block, which it signs with raw CKM_RSA_X_509 - a mechanism many tokens
// refuse, and one that lets the key sign anything. libp11's own EVP_PKEY_METHOD
// (PKCS11_pkey_meths) maps PSS to CKM_RSA_PKCS_PSS instead, but OpenSSL only consults such a
// method through an ENGINE. So hsm/ makes one in-process ENGINE that carries nothing but
// those methods and passes it to EVP_PKEY_CTX_new for PSS; it loads no code and registers
// nothing globally. Owned by a function-local static: created once, freed at exit.
int pkcs11_pkey_meths(ENGINE* engine, EVP_PKEY_METHOD** method, const int** nids, int nid) {
    return PKCS11_pkey_meths(engine, method, nids, nid);
}

class PssEngine {
  public:
    PssEngine() : engine_(ENGINE_new()) {
        if (engine_ && (ENGINE_set_id(engine_, "hbsd-hsm-pkcs11-pkey") != 1 ||
                        ENGINE_set_name(engine_, "libp11 EVP_PKEY methods for hsm/") != 1 ||
                        ENGINE_set_pkey_meths(engine_, pkcs11_pkey_meths) != 1)) {
            ENGINE_free(engine_);
            engine_ = nullptr;
        }
    }
    PssEngine(PssEngine&& other) noexcept : engine_(std::exchange(other.engine_, nullptr)) {}
    PssEngine& operator=(PssEngine&&) = delete;
    PssEngine(const PssEngine&) = delete;
    PssEngine& operator=(const PssEngine&) = delete;
    ~PssEngine() {
        if (engine_) ENGINE_free(engine_);
    }

    ENGINE* get() const noexcept { return engine_; }

  private:
    ENGINE* engine_;
};

ENGINE* pss_engine() {
    static const PssEngine engine;
    return engine.get();
}

}  // namespace

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
    ENGINE* engine = nullptr;
    if (mechanism == Mechanism::rsa_pss_sha256) {
        engine = pss_engine();
        if (!engine) return {};
    }
    EvpPkeyCtx ctx(EVP_PKEY_CTX_new(key, engine));
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
