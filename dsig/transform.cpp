#include "dsig/transform.hpp"

#include <openssl/ec.h>
#include <openssl/rsa.h>
#include <xmlsec/buffer.h>
#include <xmlsec/errors.h>
#include <xmlsec/openssl/crypto.h>
#include <xmlsec/openssl/evp.h>
#include <xmlsec/strings.h>

#include <array>
#include <cstring>

#include "protocol/error.hpp"

namespace hbsd::dsig::detail {
namespace {

// Lives in the xmlsec-allocated transform object right after xmlSecTransform (zeroed by
// xmlsec), the layout xmlsec's own transforms use.
struct Ctx {
    EVP_MD_CTX* md;
    EVP_PKEY* key;
    std::array<unsigned char, 32> digest;
};
constexpr xmlSecSize kObjSize = sizeof(xmlSecTransform) + sizeof(Ctx);

Ctx* ctx_of(xmlSecTransformPtr t) noexcept {
    return reinterpret_cast<Ctx*>(reinterpret_cast<xmlSecByte*>(t) + sizeof(xmlSecTransform));
}

bool is_ours(xmlSecTransformPtr t) noexcept {
    return t != nullptr && (t->id == rsa_sha256_transform() || t->id == ecdsa_sha256_transform()) &&
           xmlSecTransformCheckSize(t, kObjSize);
}

int initialize(xmlSecTransformPtr t) {
    if (!is_ours(t)) return -1;
    Ctx* c = ctx_of(t);
    std::memset(c, 0, sizeof *c);
    c->md = EVP_MD_CTX_new();
    if (c->md == nullptr || EVP_DigestInit_ex(c->md, EVP_sha256(), nullptr) != 1) return -1;
    return 0;
}

void finalize(xmlSecTransformPtr t) {
    if (!is_ours(t)) return;
    Ctx* c = ctx_of(t);
    EVP_MD_CTX_free(c->md);
    EVP_PKEY_free(c->key);
    std::memset(c, 0, sizeof *c);
}

int set_key_req(xmlSecTransformPtr t, xmlSecKeyReqPtr req) {
    if (!is_ours(t) || req == nullptr) return -1;
    req->keyId =
        t->id == rsa_sha256_transform() ? xmlSecOpenSSLKeyDataRsaId : xmlSecOpenSSLKeyDataEcdsaId;
    // The private half lives in the token: a public key is all we ever need, both ways. Left
    // unknown, not "public": xmlsec would otherwise ask OpenSSL whether the key has a private
    // exponent on every signature and verification (1 % of a teacher stage), and the key is
    // always the one we made from the certificate, never one xmlsec finds.
    req->keyType = xmlSecKeyDataTypeUnknown;
    req->keyUsage =
        t->operation == xmlSecTransformOperationSign ? xmlSecKeyUsageSign : xmlSecKeyUsageVerify;
    return 0;
}

int set_key(xmlSecTransformPtr t, xmlSecKeyPtr key) {
    if (!is_ours(t) || key == nullptr) return -1;
    EVP_PKEY* pkey = xmlSecOpenSSLEvpKeyDataGetEvp(xmlSecKeyGetValue(key));
    if (pkey == nullptr || EVP_PKEY_up_ref(pkey) != 1) return -1;
    Ctx* c = ctx_of(t);
    EVP_PKEY_free(c->key);
    c->key = pkey;
    return 0;
}

int verify(xmlSecTransformPtr t, const xmlSecByte* data, xmlSecSize size, xmlSecTransformCtxPtr) {
    if (!is_ours(t) || t->status != xmlSecTransformStatusFinished) return -1;
    Ctx* c = ctx_of(t);
    bool ok = data != nullptr && c->key != nullptr &&
              verify_digest(c->key, c->digest, {data, static_cast<std::size_t>(size)});
    t->status = ok ? xmlSecTransformStatusOk : xmlSecTransformStatusFail;
    return 0;
}

// Runs the signer and checks its answer. Never lets a C++ exception into xmlsec's C frames.
int sign_now(Ctx* c, xmlSecBufferPtr out, xmlSecTransformCtxPtr tctx) {
    auto* state = static_cast<SignState*>(tctx != nullptr ? tctx->userData : nullptr);
    if (state == nullptr || state->signer == nullptr || !state->signer->sign_digest) return -1;
    try {
        std::vector<unsigned char> sig = state->signer->sign_digest(c->digest);
        if (!verify_digest(c->key, c->digest, sig))
            throw Error::policy("wrong_key",
                                "the signature made by the token does not verify with the "
                                "signer certificate's public key");
        if (xmlSecBufferSetData(out, sig.data(), static_cast<xmlSecSize>(sig.size())) < 0)
            return -1;
        state->signature = std::move(sig);
        return 0;
    } catch (...) {
        // Not -1: xmlsec 1.2.37 leaks its output buffer when a transform fails while the
        // c14n output is being closed. The caller sees state->error and discards the node.
        state->error = std::current_exception();
        return 0;
    }
}

int execute(xmlSecTransformPtr t, int last, xmlSecTransformCtxPtr tctx) {
    if (!is_ours(t)) return -1;
    Ctx* c = ctx_of(t);
    xmlSecBufferPtr in = &t->inBuf;
    xmlSecBufferPtr out = &t->outBuf;
    if (t->status == xmlSecTransformStatusNone) t->status = xmlSecTransformStatusWorking;
    if (t->status != xmlSecTransformStatusWorking) {
        return t->status == xmlSecTransformStatusFinished && xmlSecBufferGetSize(in) == 0 ? 0 : -1;
    }
    xmlSecSize n = xmlSecBufferGetSize(in);
    if (n > 0) {
        if (EVP_DigestUpdate(c->md, xmlSecBufferGetData(in), n) != 1) return -1;
        if (xmlSecBufferRemoveHead(in, n) < 0) return -1;
    }
    if (last != 0) {
        unsigned int len = 0;
        if (EVP_DigestFinal_ex(c->md, c->digest.data(), &len) != 1 || len != c->digest.size())
            return -1;
        if (t->operation == xmlSecTransformOperationSign && sign_now(c, out, tctx) < 0) return -1;
        t->status = xmlSecTransformStatusFinished;
    }
    return 0;
}

xmlSecTransformKlass make_klass(const xmlChar* name, const xmlChar* href) {
    return xmlSecTransformKlass{
        sizeof(xmlSecTransformKlass),
        kObjSize,
        name,
        href,
        xmlSecTransformUsageSignatureMethod,
        initialize,
        finalize,
        nullptr,  // readNode
        nullptr,  // writeNode
        set_key_req,
        set_key,
        verify,
        xmlSecTransformDefaultGetDataType,
        xmlSecTransformDefaultPushBin,
        xmlSecTransformDefaultPopBin,
        nullptr,  // pushXml
        nullptr,  // popXml
        execute,
        nullptr,
        nullptr,
    };
}

const xmlSecTransformKlass kRsaSha256 = make_klass(BAD_CAST "hbsd-rsa-sha256", xmlSecHrefRsaSha256);
const xmlSecTransformKlass kEcdsaSha256 =
    make_klass(BAD_CAST "hbsd-ecdsa-sha256", xmlSecHrefEcdsaSha256);

struct PKeyCtxDeleter {
    void operator()(EVP_PKEY_CTX* p) const noexcept { EVP_PKEY_CTX_free(p); }
};
struct EcdsaSigDeleter {
    void operator()(ECDSA_SIG* p) const noexcept { ECDSA_SIG_free(p); }
};

}  // namespace

xmlSecTransformId rsa_sha256_transform() noexcept {
    return &kRsaSha256;
}
xmlSecTransformId ecdsa_sha256_transform() noexcept {
    return &kEcdsaSha256;
}

bool verify_digest(EVP_PKEY* key, std::span<const unsigned char> digest,
                   std::span<const unsigned char> signature) {
    if (key == nullptr || digest.size() != 32) return false;
    std::vector<unsigned char> der;  // ECDSA: OpenSSL wants DER, XML-DSig carries r||s
    std::span<const unsigned char> sig = signature;
    if (EVP_PKEY_get_base_id(key) == EVP_PKEY_EC) {
        const auto half = static_cast<std::size_t>((EVP_PKEY_get_bits(key) + 7) / 8);
        if (signature.size() != 2 * half) return false;
        std::unique_ptr<ECDSA_SIG, EcdsaSigDeleter> es(ECDSA_SIG_new());
        BIGNUM* r = BN_bin2bn(signature.data(), static_cast<int>(half), nullptr);
        BIGNUM* s = BN_bin2bn(signature.data() + half, static_cast<int>(half), nullptr);
        if (!es || r == nullptr || s == nullptr || ECDSA_SIG_set0(es.get(), r, s) != 1) {
            BN_free(r);
            BN_free(s);
            return false;
        }
        unsigned char* p = nullptr;
        int len = i2d_ECDSA_SIG(es.get(), &p);
        if (len <= 0) return false;
        der.assign(p, p + len);
        OPENSSL_free(p);
        sig = der;
    } else if (EVP_PKEY_get_base_id(key) == EVP_PKEY_RSA) {
        if (signature.size() != static_cast<std::size_t>(EVP_PKEY_get_size(key))) return false;
    } else {
        return false;
    }
    std::unique_ptr<EVP_PKEY_CTX, PKeyCtxDeleter> pctx(EVP_PKEY_CTX_new(key, nullptr));
    if (!pctx || EVP_PKEY_verify_init(pctx.get()) != 1) return false;
    if (EVP_PKEY_get_base_id(key) == EVP_PKEY_RSA &&
        EVP_PKEY_CTX_set_rsa_padding(pctx.get(), RSA_PKCS1_PADDING) != 1)
        return false;
    if (EVP_PKEY_CTX_set_signature_md(pctx.get(), EVP_sha256()) != 1) return false;
    return EVP_PKEY_verify(pctx.get(), sig.data(), sig.size(), digest.data(), digest.size()) == 1;
}

}  // namespace hbsd::dsig::detail
