// xmlsec1 (OpenSSL backend) as this module uses it: initialised once per process, quiet, with
// the hbsd signature transforms registered ahead of OpenSSL's (see transform.hpp), and small
// RAII owners for the handles we create.
#pragma once

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <xmlsec/keys.h>
#include <xmlsec/xmldsig.h>

#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace hbsd::dsig::detail {

// libxml2 + xmlsec1 + xmlsec-openssl, once per process (std::call_once). Also sets xmlsec's
// default parser options without HUGE/NOENT so that no xmlsec code path can parse with them.
void init_xmlsec();

// The last xmlsec error reported on this thread since clear_xmlsec_error(), for messages.
void clear_xmlsec_error() noexcept;
std::string last_xmlsec_error();

struct DSigCtxDeleter {
    void operator()(xmlSecDSigCtxPtr p) const noexcept { xmlSecDSigCtxDestroy(p); }
};
using DSigCtx = std::unique_ptr<xmlSecDSigCtx, DSigCtxDeleter>;

struct KeyDeleter {
    void operator()(xmlSecKeyPtr p) const noexcept { xmlSecKeyDestroy(p); }
};
using Key = std::unique_ptr<xmlSecKey, KeyDeleter>;

struct X509Deleter {
    void operator()(X509* p) const noexcept { X509_free(p); }
};
using X509Ptr = std::unique_ptr<X509, X509Deleter>;

struct PKeyDeleter {
    void operator()(EVP_PKEY* p) const noexcept { EVP_PKEY_free(p); }
};
using PKey = std::unique_ptr<EVP_PKEY, PKeyDeleter>;

struct XmlCharDeleter {
    void operator()(xmlChar* p) const noexcept;
};
using XmlString = std::unique_ptr<xmlChar, XmlCharDeleter>;

// A signer certificate as the profile accepts it.
enum class KeyKind { rsa, ec };
struct CertInfo {
    X509Ptr cert;
    PKey key;  // its public key
    KeyKind kind;
    std::vector<unsigned char> der;
    std::string subject;      // RFC 2253
    std::string fingerprint;  // lowercase hex SHA-256 of der
    // der in base64, 64 columns, as xmlsec writes ds:X509Certificate; written by sign_slot
    // itself rather than by xmlsec from the key, which would encode it again every time.
    std::string base64_lines;
};
// The certificate, or why it cannot sign in this profile (RSA >= 2048 bits, EC on P-256 or
// P-384). Decoded certificates are cached per process (read-only, shared across threads):
// OpenSSL 3's decoding is a sixth of a verification, and a school has few signers.
struct CertResult {
    std::shared_ptr<const CertInfo> info;
    std::string problem;
};
CertResult load_certificate(std::span<const unsigned char> der);
// The same from the base64 text of a ds:X509Certificate.
CertResult load_certificate_base64(std::string_view text);

// The SignatureMethod href for a key kind.
const xmlChar* signature_href(KeyKind kind) noexcept;

// An xmlSecKey holding the public key of `info`, nothing else (sign_slot writes the
// certificate into KeyInfo itself).
Key make_public_key(const CertInfo& info);

// A signing or verification context restricted to the profile: exclusive C14N, SHA-256,
// enveloped-signature, same-document URIs, our RSA/ECDSA-SHA256 transforms, no manifests,
// the key preset (so KeyInfo is never used to find a key and no chain is verified).
DSigCtx make_dsig_ctx(Key key);

std::vector<unsigned char> sha256(std::span<const unsigned char> bytes);
std::string base64(std::span<const unsigned char> bytes);  // one line
// nullopt for malformed base64 (xmlsec's decoder).
std::optional<std::vector<unsigned char>> unbase64(std::string_view text);

}  // namespace hbsd::dsig::detail
