#include "dsig/xmlsec.hpp"

#include <libxml/parser.h>
#include <openssl/bio.h>
#include <openssl/ec.h>
#include <openssl/obj_mac.h>
#include <xmlsec/base64.h>
#include <xmlsec/errors.h>
#include <xmlsec/openssl/crypto.h>
#include <xmlsec/openssl/evp.h>
#include <xmlsec/openssl/x509.h>
#include <xmlsec/parser.h>
#include <xmlsec/strings.h>
#include <xmlsec/xmlsec.h>

#include <mutex>
#include <unordered_map>

#include "dsig/c14n.hpp"
#include "dsig/transform.hpp"
#include "protocol/error.hpp"
#include "protocol/hex.hpp"

namespace hbsd::dsig::detail {
namespace {

thread_local std::string t_last_error;

// xmlsec's default callback prints to stderr; a daemon keeps the reason for its own message.
void on_xmlsec_error(const char* /*file*/, int /*line*/, const char* func, const char* errorObject,
                     const char* errorSubject, int reason, const char* msg) {
    std::string e = func != nullptr ? func : "";
    if (errorObject != nullptr) e += std::string(" obj=") + errorObject;
    if (errorSubject != nullptr) e += std::string(" subj=") + errorSubject;
    e += " reason=" + std::to_string(reason);
    if (msg != nullptr) e += std::string(": ") + msg;
    if (t_last_error.empty()) t_last_error = std::move(e);
}

void do_init() {
    xmlInitParser();
    if (xmlSecInit() < 0) throw Error::internal("xmlSecInit failed");
    if (xmlSecCheckVersion() != 1) throw Error::internal("xmlsec library version mismatch");
    // xmlSecInit registered xmlsec's exc-c14n; ours (which wraps it) takes its place.
    install_exc_c14n();
    // Ours must precede OpenSSL's: SignatureMethod is looked up by href, first match wins.
    if (xmlSecTransformIdsRegister(rsa_sha256_transform()) < 0 ||
        xmlSecTransformIdsRegister(ecdsa_sha256_transform()) < 0)
        throw Error::internal("registering the hbsd signature transforms failed");
    // No xmlSecOpenSSLAppInit: it would load the OpenSSL config file process-wide, which is
    // hsm/'s business; OpenSSL 3 initialises itself.
    if (xmlSecOpenSSLInit() < 0) throw Error::internal("xmlSecOpenSSLInit failed");
    // After xmlSecOpenSSLInit, which installs its own (printing) callback.
    xmlSecErrorsSetCallback(on_xmlsec_error);
    // xmlsec's default (NONET|NODICT|HUGE) is never wanted; we never hand documents to xmlsec's
    // parser, and if any path did, it gets no HUGE.
    xmlSecParserSetDefaultOptions(XML_PARSE_NONET | XML_PARSE_NODICT);
}

}  // namespace

void init_xmlsec() {
    static std::once_flag once;
    static bool ok = false;
    std::call_once(once, [] {
        do_init();
        ok = true;
    });
    if (!ok) throw Error::internal("xmlsec initialisation failed earlier");
}

void clear_xmlsec_error() noexcept {
    t_last_error.clear();
}
std::string last_xmlsec_error() {
    return t_last_error;
}

void XmlCharDeleter::operator()(xmlChar* p) const noexcept {
    xmlFree(p);
}

std::vector<unsigned char> sha256(std::span<const unsigned char> bytes) {
    std::vector<unsigned char> out(32);
    unsigned int len = 0;
    if (EVP_Digest(bytes.data(), bytes.size(), out.data(), &len, EVP_sha256(), nullptr) != 1)
        throw Error::internal("SHA-256 failed");
    return out;
}

std::string base64(std::span<const unsigned char> bytes) {
    XmlString s(xmlSecBase64Encode(bytes.data(), static_cast<xmlSecSize>(bytes.size()), 0));
    if (!s) throw Error::internal("base64 encoding failed");
    return reinterpret_cast<const char*>(s.get());
}

std::optional<std::vector<unsigned char>> unbase64(std::string_view text) {
    std::string z(text);  // xmlsec wants a NUL-terminated string
    std::vector<unsigned char> out(z.size() / 4 * 3 + 3);
    xmlSecSize written = 0;
    if (xmlSecBase64Decode_ex(BAD_CAST z.c_str(), out.data(), static_cast<xmlSecSize>(out.size()),
                              &written) < 0)
        return std::nullopt;
    out.resize(written);
    return out;
}

namespace {

CertResult decode_certificate(std::span<const unsigned char> der) {
    CertResult r;
    const unsigned char* p = der.data();
    X509Ptr cert(d2i_X509(nullptr, &p, static_cast<long>(der.size())));
    if (!cert || p != der.data() + der.size()) {
        r.problem = "the certificate is not a DER X.509 certificate";
        return r;
    }
    PKey key(X509_get_pubkey(cert.get()));
    if (!key) {
        r.problem = "the certificate's public key cannot be read";
        return r;
    }
    KeyKind kind;
    switch (EVP_PKEY_get_base_id(key.get())) {
        case EVP_PKEY_RSA:
            if (EVP_PKEY_get_bits(key.get()) < 2048) {
                r.problem = "RSA key shorter than 2048 bits";
                return r;
            }
            kind = KeyKind::rsa;
            break;
        case EVP_PKEY_EC: {
            char group[64] = {};
            size_t len = 0;
            if (EVP_PKEY_get_utf8_string_param(key.get(), "group", group, sizeof group, &len) !=
                    1 ||
                (std::string_view(group) != SN_X9_62_prime256v1 &&
                 std::string_view(group) != SN_secp384r1)) {
                r.problem = "EC key not on P-256 or P-384";
                return r;
            }
            kind = KeyKind::ec;
            break;
        }
        default:
            r.problem = "the certificate's key is neither RSA nor EC";
            return r;
    }
    auto info = std::make_unique<CertInfo>();
    info->der.assign(der.begin(), der.end());
    info->fingerprint = sha256_hex(der);
    {
        XmlString b64(xmlSecBase64Encode(der.data(), static_cast<xmlSecSize>(der.size()),
                                         xmlSecBase64GetDefaultLineSize()));
        if (!b64) {
            r.problem = "base64 encoding of the certificate failed";
            return r;
        }
        info->base64_lines = reinterpret_cast<const char*>(b64.get());
        info->base64_lines += '\n';
    }
    std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), BIO_free);
    if (bio && X509_NAME_print_ex(bio.get(), X509_get_subject_name(cert.get()), 0,
                                  XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB) >= 0) {
        char* data = nullptr;
        long n = BIO_get_mem_data(bio.get(), &data);
        if (n > 0) info->subject.assign(data, static_cast<std::size_t>(n));
    }
    info->cert = std::move(cert);
    info->key = std::move(key);
    info->kind = kind;
    r.info = std::move(info);
    return r;
}

}  // namespace

namespace {

// Keys: 'D' + DER, or 'T' + the X509Certificate text as found (saves the base64 decoding).
std::mutex g_cert_mutex;
std::unordered_map<std::string, std::shared_ptr<const CertInfo>> g_certs;

std::shared_ptr<const CertInfo> cached(const std::string& key) {
    std::lock_guard lock(g_cert_mutex);
    auto it = g_certs.find(key);
    return it != g_certs.end() ? it->second : nullptr;
}

void remember(std::string key, std::shared_ptr<const CertInfo> info) {
    constexpr std::size_t kMaxEntries = 4096;
    std::lock_guard lock(g_cert_mutex);
    if (g_certs.size() >= kMaxEntries) g_certs.clear();  // crude, bounded; signers are few
    g_certs.emplace(std::move(key), std::move(info));
}

}  // namespace

CertResult load_certificate(std::span<const unsigned char> der) {
    std::string key = "D";
    key.append(reinterpret_cast<const char*>(der.data()), der.size());
    if (auto info = cached(key)) return {std::move(info), {}};
    CertResult r = decode_certificate(der);
    if (r.info) remember(std::move(key), r.info);
    return r;
}

CertResult load_certificate_base64(std::string_view text) {
    std::string key = "T";
    key.append(text);
    if (auto info = cached(key)) return {std::move(info), {}};
    auto der = unbase64(text);
    if (!der) return {nullptr, "X509Certificate is not base64"};
    CertResult r = load_certificate(*der);
    if (r.info) remember(std::move(key), r.info);
    return r;
}

const xmlChar* signature_href(KeyKind kind) noexcept {
    return kind == KeyKind::rsa ? xmlSecHrefRsaSha256 : xmlSecHrefEcdsaSha256;
}

Key make_public_key(const CertInfo& info) {
    Key key(xmlSecKeyCreate());
    if (!key) throw Error::internal("xmlSecKeyCreate failed");
    EVP_PKEY* pk = info.key.get();
    if (EVP_PKEY_up_ref(pk) != 1) throw Error::internal("EVP_PKEY_up_ref failed");
    xmlSecKeyDataPtr value = xmlSecOpenSSLEvpKeyAdopt(pk);
    if (value == nullptr) {
        EVP_PKEY_free(pk);
        throw Error::internal("xmlSecOpenSSLEvpKeyAdopt failed: " + last_xmlsec_error());
    }
    if (xmlSecKeySetValue(key.get(), value) < 0) {
        xmlSecKeyDataDestroy(value);
        throw Error::internal("xmlSecKeySetValue failed");
    }
    return key;
}

DSigCtx make_dsig_ctx(Key key) {
    DSigCtx ctx(xmlSecDSigCtxCreate(nullptr));
    if (!ctx) throw Error::internal("xmlSecDSigCtxCreate failed");
    // USE_VISA3D_HACK (a name from the protocol that needed it): a bare-name "#Id" URI is
    // resolved with xmlGetID on the document's ID table instead of by evaluating the XPointer
    // "xpointer(id('Id'))", which builds an XPath context with every XPath function
    // registered for each Reference (a sixth of verifying a record's 14 signatures). The
    // node-set is the same (the element's subtree without comments), the ID table is the same
    // one XPath's id() reads (only the profile's Ids are registered in it), and every URI has
    // already been checked to be "#" + the Id the profile expects at that place.
    ctx->flags |= XMLSEC_DSIG_FLAGS_IGNORE_MANIFESTS | XMLSEC_DSIG_FLAGS_USE_VISA3D_HACK;
    ctx->enabledReferenceUris = xmlSecTransformUriTypeSameDocument;
    bool ok = xmlSecDSigCtxEnableSignatureTransform(ctx.get(), exc_c14n_transform()) == 0 &&
              xmlSecDSigCtxEnableSignatureTransform(ctx.get(), rsa_sha256_transform()) == 0 &&
              xmlSecDSigCtxEnableSignatureTransform(ctx.get(), ecdsa_sha256_transform()) == 0 &&
              xmlSecDSigCtxEnableReferenceTransform(ctx.get(), exc_c14n_transform()) == 0 &&
              xmlSecDSigCtxEnableReferenceTransform(ctx.get(), xmlSecTransformEnvelopedId) == 0 &&
              xmlSecDSigCtxEnableReferenceTransform(ctx.get(), xmlSecOpenSSLTransformSha256Id) == 0;
    if (!ok) throw Error::internal("restricting the xmlsec transforms failed");
    ctx->signKey = key.release();  // the context owns it now
    return ctx;
}

}  // namespace hbsd::dsig::detail
