#include "dsig/sign.hpp"

#include <xmlsec/openssl/crypto.h>
#include <xmlsec/templates.h>

#include <algorithm>

#include "dsig/transform.hpp"
#include "dsig/xades.hpp"
#include "dsig/xmlsec.hpp"
#include "protocol/error.hpp"
#include "protocol/hex.hpp"

namespace hbsd::dsig::detail {
namespace {

// Unlinks and frees a node that has not become part of the result (freeing an attribute
// that is a registered ID also removes it from the ID table), and forgets canonical bytes
// of the elements it was under.
struct NodeGuard {
    xmlNodePtr node;
    C14NCache* cache = nullptr;
    ~NodeGuard() {
        if (node != nullptr) {
            xmlNodePtr parent = node->parent;
            xmlUnlinkNode(node);
            xmlFreeNode(node);
            if (cache != nullptr) cache->forget_path(parent);
        }
    }
};

template <typename T>
T* check(T* p, const char* what) {
    if (p == nullptr) throw Error::internal(std::string(what) + " failed: " + last_xmlsec_error());
    return p;
}

// xmlsec's templates put a line feed before every child. Every later canonicalisation of any
// Reference walks the whole document (xmlsec 1.2.37 / libxml2 C14N), so each node we add costs
// every later signature and verification: the signature goes in without them.
void drop_blank_text(xmlNodePtr node) {
    for (xmlNodePtr c = node->children; c != nullptr;) {
        xmlNodePtr next = c->next;
        if (c->type == XML_TEXT_NODE && xmlIsBlankNode(c)) {
            xmlUnlinkNode(c);
            xmlFreeNode(c);
        } else if (c->type == XML_ELEMENT_NODE) {
            drop_blank_text(c);
        }
        c = next;
    }
}

auto order_key(const Slot& s) {
    return std::make_tuple(s.year, static_cast<int>(s.stage), s.subject.value_or(0));
}

}  // namespace

Slot& sign_slot(Record& rec, Stage stage, std::size_t year, std::optional<std::size_t> subject,
                const Signer& signer, std::chrono::system_clock::time_point signing_time) {
    const Year& y = rec.years[year];
    std::optional<std::string_view> code;
    if (subject) code = y.subjects[*subject].code;
    const std::string sig_id = signature_id(stage, rec.code, y.year, code);
    const std::string sp_id = sig_id + "-SP";

    if (!signer.sign_digest) throw Error::internal("the signer has no sign_digest");
    CertResult cr = load_certificate(signer.certificate_der);
    if (!cr.info) throw Error::certificate_invalid(cr.problem);
    const CertInfo& cert = *cr.info;
    if (rec.ids.contains(sig_id) || rec.ids.contains(sp_id))
        throw Error::invalid_document("Id " + sig_id +
                                      " is already used elsewhere in the document");

    std::vector<RefSpec> refs = expected_references(rec, stage, year, subject, nullptr);
    for (const RefSpec& r : refs)
        if (r.target == nullptr && !r.signed_properties)
            throw Error::policy("earlier_invalid",
                                "#" + r.id + " is missing or not where the profile puts it");

    clear_xmlsec_error();
    xmlDocPtr doc = rec.doc.get();
    xmlSecTransformId method =
        cert.kind == KeyKind::rsa ? rsa_sha256_transform() : ecdsa_sha256_transform();
    NodeGuard guard{check(xmlSecTmplSignatureCreateNsPref(doc, xmlSecTransformExclC14NId, method,
                                                          BAD_CAST sig_id.c_str(), BAD_CAST "ds"),
                          "xmlSecTmplSignatureCreateNsPref")};
    xmlNodePtr sig = guard.node;
    for (const RefSpec& r : refs) {
        std::string uri = "#" + r.id;
        xmlNodePtr ref =
            check(xmlSecTmplSignatureAddReference(
                      sig, xmlSecOpenSSLTransformSha256Id, nullptr, BAD_CAST uri.c_str(),
                      r.signed_properties ? BAD_CAST kSignedPropertiesType : nullptr),
                  "xmlSecTmplSignatureAddReference");
        if (r.enveloped)
            check(xmlSecTmplReferenceAddTransform(ref, xmlSecTransformEnvelopedId),
                  "xmlSecTmplReferenceAddTransform");
        check(xmlSecTmplReferenceAddTransform(ref, xmlSecTransformExclC14NId),
              "xmlSecTmplReferenceAddTransform");
    }
    xmlNodePtr ki = check(xmlSecTmplSignatureEnsureKeyInfo(sig, nullptr), "EnsureKeyInfo");
    xmlNodePtr x509_cert = check(
        xmlSecTmplX509DataAddCertificate(check(xmlSecTmplKeyInfoAddX509Data(ki), "AddX509Data")),
        "X509DataAddCertificate");
    // Filled here: the key handed to xmlsec carries no X509 data, so xmlsec writes nothing.
    xmlNodeAddContentLen(x509_cert, BAD_CAST cert.base64_lines.data(),
                         static_cast<int>(cert.base64_lines.size()));
    xmlNodePtr obj = check(xmlSecTmplSignatureAddObject(sig, nullptr, nullptr, nullptr),
                           "xmlSecTmplSignatureAddObject");
    const std::string when = format_signing_time(signing_time);
    xmlNodePtr sp = add_qualifying_properties(obj, sig_id, stage, cert, when);

    drop_blank_text(sig);

    // At its place: last child of MonHoc (enveloped), or next in ChuKy.
    xmlNodePtr parent = subject ? y.subjects[*subject].node : y.chuky;
    if (xmlAddChild(parent, sig) == nullptr) throw Error::internal("xmlAddChild failed");
    guard.cache = &rec.c14n;
    rec.c14n.forget_path(parent);  // everything above the new signature now reads differently
    register_id(doc, sig);
    register_id(doc, sp);

    DSigCtx ctx = make_dsig_ctx(make_public_key(cert));
    SignState state;
    state.signer = &signer;
    ctx->transformCtx.userData = &state;
    int rc;
    {
        C14NScope memo(rec.c14n);
        rc = xmlSecDSigCtxSign(ctx.get(), sig);
    }
    // xmlsec wrote DigestValues, SignatureValue and KeyInfo below the new node.
    rec.c14n.forget_path(parent);
    if (state.error) std::rethrow_exception(state.error);
    if (rc < 0 || ctx->status != xmlSecDSigStatusSucceeded) {
        throw Error::internal("xmlsec signing failed: " + last_xmlsec_error());
    }
    if (state.signature.empty()) throw Error::internal("no signature value was produced");
    guard.node = nullptr;  // part of the document now

    rec.ids.insert(sig_id);
    rec.ids.insert(sp_id);

    auto slot = std::make_unique<Slot>(stage, year, subject, sig, sig_id);
    SignatureReport rep;
    rep.id = sig_id;
    rep.role = stage;
    if (code) rep.subject = std::string(*code);
    rep.year = y.year;
    rep.signer = cert.subject;
    rep.fingerprint = cert.fingerprint;
    rep.signing_time = when;
    // xmlsec built every digest and our transform checked the value against the certificate.
    rep.valid = true;
    rep.certificate_der = cert.der;
    rep.signature_value_sha256 = sha256_hex(state.signature);
    slot->checked = std::move(rep);

    auto pos = std::upper_bound(
        rec.slots.begin(), rec.slots.end(), order_key(*slot),
        [](const auto& key, const std::unique_ptr<Slot>& s) { return key < order_key(*s); });
    return **rec.slots.insert(pos, std::move(slot));
}

}  // namespace hbsd::dsig::detail
