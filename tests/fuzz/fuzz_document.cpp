// libFuzzer target for the document checks: whatever the bytes, Document::parse either
// throws hbsd::Error or yields a document whose report, order decisions and serialisation
// work; its serialisation parses again to the same verdicts; and a signature added to it
// (with a throw-away P-256 key made at start-up) verifies after a fresh parse; and xmlsec's
// whole-document C14N judges every signature as our subtree C14N does.
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "dsig/c14n.hpp"
#include "dsig/document.hpp"
#include "policies/order.hpp"
#include "protocol/error.hpp"

using namespace hbsd;

namespace {

// A self-signed P-256 certificate and its key, once per process.
struct TestSigner {
    EVP_PKEY* key = nullptr;
    dsig::Signer signer;

    TestSigner() {
        key = EVP_EC_gen("P-256");
        X509* cert = X509_new();
        X509_set_version(cert, 2);
        ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
        X509_gmtime_adj(X509_getm_notBefore(cert), 0);
        X509_gmtime_adj(X509_getm_notAfter(cert), 3600);
        X509_NAME* name = X509_get_subject_name(cert);
        X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                                   reinterpret_cast<const unsigned char*>("fuzz"), -1, -1, 0);
        X509_set_issuer_name(cert, name);
        X509_set_pubkey(cert, key);
        X509_sign(cert, key, EVP_sha256());
        unsigned char* der = nullptr;
        int n = i2d_X509(cert, &der);
        signer.certificate_der.assign(der, der + n);
        OPENSSL_free(der);
        X509_free(cert);
        EVP_PKEY* k = key;
        signer.sign_digest = [k](std::span<const unsigned char> d) {
            EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new(k, nullptr);
            EVP_PKEY_sign_init(ctx);
            size_t len = 0;
            EVP_PKEY_sign(ctx, nullptr, &len, d.data(), d.size());
            std::vector<unsigned char> sig(len);
            EVP_PKEY_sign(ctx, sig.data(), &len, d.data(), d.size());
            EVP_PKEY_CTX_free(ctx);
            const unsigned char* p = sig.data();
            ECDSA_SIG* es = d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(len));
            std::vector<unsigned char> rs(64);
            BN_bn2binpad(ECDSA_SIG_get0_r(es), rs.data(), 32);
            BN_bn2binpad(ECDSA_SIG_get0_s(es), rs.data() + 32, 32);
            ECDSA_SIG_free(es);
            return rs;
        };
    }
};

const dsig::Signer& test_signer() {
    static TestSigner s;
    return s.signer;
}

// The next stage of `y` as the document stands, if any.
std::optional<std::pair<dsig::Stage, std::optional<std::string>>> next_stage(
    const dsig::YearReport& y) {
    if (!y.missing_subjects.empty())
        return std::pair{dsig::Stage::subject_teacher,
                         std::optional<std::string>(y.missing_subjects.front())};
    if (!y.stage) return std::nullopt;  // no subjects at all
    if (*y.stage == dsig::Stage::school) return std::nullopt;
    return std::pair{static_cast<dsig::Stage>(static_cast<int>(*y.stage) + 1),
                     std::optional<std::string>()};
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string_view xml(reinterpret_cast<const char*>(data), size);
    dsig::Limits limits;
    limits.max_bytes = 1u << 20;  // keep iterations fast; the limit itself is unit-tested
    try {
        auto doc = dsig::Document::parse(xml, limits);
        const dsig::Report& r = doc.report();
        const auto verdict = r.verdict();
        std::vector<bool> valid;
        for (const auto& s : r.signatures) valid.push_back(s.valid);
        for (const auto& y : doc.years()) {
            for (auto stage : {dsig::Stage::subject_teacher, dsig::Stage::homeroom_teacher,
                               dsig::Stage::principal, dsig::Stage::school}) {
                std::optional<std::string_view> subject;
                if (stage == dsig::Stage::subject_teacher && !y.subjects.empty())
                    subject = y.subjects.front();
                try {
                    policies::check_order(doc, stage, y.year, subject);
                } catch (const Error&) {
                }
            }
        }
        auto again = dsig::Document::parse(doc.serialize());
        if (again.report().signatures.size() != valid.size()) __builtin_trap();
        for (std::size_t i = 0; i < valid.size(); ++i)
            if (again.report().signatures[i].valid != valid[i]) __builtin_trap();
        if (again.report().verdict() != verdict) __builtin_trap();

        // Differential: xmlsec's whole-document C14N must judge exactly as our subtree C14N.
        dsig::detail::set_subtree_c14n(false);
        auto slow = dsig::Document::parse(xml, limits);
        const auto& rs = slow.report();
        dsig::detail::set_subtree_c14n(true);
        for (std::size_t i = 0; i < valid.size(); ++i)
            if (rs.signatures[i].valid != valid[i]) __builtin_trap();

        // Sign the next stage of the first year; whatever add_signature accepts must verify.
        const dsig::YearReport y = doc.years().front();
        if (auto next = next_stage(y)) {
            std::optional<std::string_view> subject;
            if (next->second) subject = *next->second;
            try {
                auto rep = doc.add_signature(next->first, y.year, subject, test_signer(),
                                             std::chrono::system_clock::now());
                if (!rep.valid) __builtin_trap();
                auto signed_doc = dsig::Document::parse(doc.serialize());
                const auto* s = signed_doc.signature(next->first, y.year, subject);
                if (s == nullptr || !s->valid) __builtin_trap();
            } catch (const Error&) {
            }
        }
    } catch (const Error&) {
    }
    return 0;
}
