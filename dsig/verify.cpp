#include "dsig/verify.hpp"

#include <libxml/valid.h>
#include <xmlsec/list.h>
#include <xmlsec/strings.h>

#include "dsig/transform.hpp"
#include "dsig/xades.hpp"
#include "dsig/xmlsec.hpp"
#include "protocol/hex.hpp"

namespace hbsd::dsig::detail {
namespace {

constexpr char kSha256[] = "http://www.w3.org/2001/04/xmlenc#sha256";

bool algorithm_is(xmlNodePtr n, const xmlChar* href) {
    return only_attributes(n, {"Algorithm"}) && first_element(n) == nullptr &&
           xmlStrEqual(BAD_CAST attr(n, "Algorithm").value_or("").c_str(), href);
}

// SignedInfo's References against the profile's list; problems appended.
void check_references(const Record& rec, const Slot& slot, xmlNodePtr first_ref,
                      std::vector<std::string>& p) {
    std::vector<RefSpec> want =
        expected_references(rec, slot.stage, slot.year, slot.subject, slot.node);
    xmlNodePtr ref = first_ref;
    for (const RefSpec& spec : want) {
        std::string uri = "#" + spec.id;
        if (!is(ref, kDsNs, "Reference")) {
            p.push_back("missing Reference " + uri);
            return;
        }
        auto got = attr(ref, "URI");
        if (got != uri) {
            p.push_back("Reference URI \"" + got.value_or("(none)") + "\" where the profile " +
                        "requires \"" + uri + "\"");
            return;  // the rest would only repeat it
        }
        if (spec.signed_properties) {
            if (!only_attributes(ref, {"URI", "Type"}) ||
                attr(ref, "Type") != kSignedPropertiesType)
                p.push_back("Reference " + uri +
                            " must have only URI and the SignedProperties Type");
        } else if (!only_attributes(ref, {"URI"})) {
            p.push_back("Reference " + uri + " carries attributes other than URI");
        }
        xmlNodePtr transforms = first_element(ref);
        xmlNodePtr dm = next_element(transforms);
        xmlNodePtr dv = next_element(dm);
        if (!is(transforms, kDsNs, "Transforms") || !only_attributes(transforms, {}) ||
            !is(dm, kDsNs, "DigestMethod") || !is(dv, kDsNs, "DigestValue") ||
            next_element(dv) != nullptr || !only_attributes(dv, {})) {
            p.push_back("Reference " + uri + " must hold Transforms, DigestMethod, DigestValue");
        } else {
            if (!algorithm_is(dm, BAD_CAST kSha256))
                p.push_back("Reference " + uri + " must use SHA-256");
            // Exactly [enveloped-signature,] exc-c14n: nothing else may shape what is digested.
            xmlNodePtr t = first_element(transforms);
            if (spec.enveloped) {
                if (!is(t, kDsNs, "Transform") || !algorithm_is(t, xmlSecHrefEnveloped))
                    p.push_back("Reference " + uri +
                                " must start with the enveloped-signature "
                                "transform");
                t = next_element(t);
            }
            if (!is(t, kDsNs, "Transform") || !algorithm_is(t, xmlSecHrefExcC14N) ||
                next_element(t) != nullptr)
                p.push_back("Reference " + uri + " has transforms other than the profile's (" +
                            std::string(spec.enveloped ? "enveloped-signature, " : "") +
                            "exclusive C14N)");
        }
        // The Id must name the very element the profile means, at its place.
        xmlAttrPtr id = xmlGetID(rec.doc.get(), BAD_CAST spec.id.c_str());
        if (spec.target == nullptr || id == nullptr || id->parent != spec.target)
            p.push_back("Reference " + uri + " does not resolve to the profile's element");
        ref = next_element(ref);
    }
    if (ref != nullptr) p.push_back("unexpected extra Reference " + attr(ref, "URI").value_or(""));
}

}  // namespace

SignatureReport check_signature(const Record& rec, const Slot& slot) {
    const Year& y = rec.years[slot.year];
    SignatureReport r;
    r.id = attr(slot.node, "Id").value_or("");
    r.role = slot.stage;
    if (slot.subject) r.subject = y.subjects[*slot.subject].code;
    r.year = y.year;
    auto& p = r.problems;

    if (r.id != slot.expected_id)
        p.push_back("Id \"" + r.id + "\" where the profile requires \"" + slot.expected_id + "\"");
    if (!only_attributes(slot.node, {"Id"})) p.push_back("unexpected attribute on ds:Signature");

    xmlNodePtr si = first_element(slot.node);
    xmlNodePtr sv = next_element(si);
    xmlNodePtr ki = next_element(sv);
    xmlNodePtr obj = next_element(ki);
    if (!is(si, kDsNs, "SignedInfo") || !is(sv, kDsNs, "SignatureValue") ||
        !is(ki, kDsNs, "KeyInfo") || !is(obj, kDsNs, "Object") || next_element(obj) != nullptr) {
        p.push_back("ds:Signature must hold SignedInfo, SignatureValue, KeyInfo, Object");
        return r;
    }

    // KeyInfo: exactly one X509Data with exactly one X509Certificate.
    std::shared_ptr<const CertInfo> cert;
    xmlNodePtr x5 = first_element(ki);
    xmlNodePtr x5c = first_element(x5);
    if (!only_attributes(ki, {}) || !is(x5, kDsNs, "X509Data") || next_element(x5) != nullptr ||
        !only_attributes(x5, {}) || !is(x5c, kDsNs, "X509Certificate") ||
        next_element(x5c) != nullptr || !only_attributes(x5c, {}) ||
        first_element(x5c) != nullptr) {
        p.push_back("KeyInfo must hold exactly X509Data/X509Certificate");
    } else {
        CertResult cr = load_certificate_base64(text(x5c));
        if (!cr.info) {
            p.push_back("certificate: " + cr.problem);
        } else {
            cert = std::move(cr.info);
            r.signer = cert->subject;
            r.fingerprint = cert->fingerprint;
            r.certificate_der = cert->der;
        }
    }

    if (!only_attributes(sv, {}) || first_element(sv) != nullptr) {
        p.push_back("SignatureValue must be plain base64");
    } else if (auto raw = unbase64(text(sv)); !raw || raw->empty()) {
        p.push_back("SignatureValue is not base64");
    } else {
        r.signature_value_sha256 = sha256_hex(*raw);
    }

    // SignedInfo: exc-c14n, the method of the key, then the References.
    xmlNodePtr cm = first_element(si);
    xmlNodePtr sm = next_element(cm);
    if (!only_attributes(si, {}) || !is(cm, kDsNs, "CanonicalizationMethod") ||
        !is(sm, kDsNs, "SignatureMethod")) {
        p.push_back("SignedInfo must start with CanonicalizationMethod, SignatureMethod");
    } else {
        if (!algorithm_is(cm, xmlSecHrefExcC14N))
            p.push_back("CanonicalizationMethod must be exclusive C14N without comments");
        if (!algorithm_is(sm, xmlSecHrefRsaSha256) && !algorithm_is(sm, xmlSecHrefEcdsaSha256))
            p.push_back("SignatureMethod must be rsa-sha256 or ecdsa-sha256");
        else if (cert && !algorithm_is(sm, signature_href(cert->kind)))
            p.push_back("SignatureMethod does not fit the certificate's key");
        check_references(rec, slot, next_element(sm), p);
    }

    r.signing_time = check_qualifying_properties(obj, slot.expected_id, slot.stage, cert.get(), p);

    if (!p.empty() || !cert) return r;

    // Cryptography, by xmlsec: References' digests, C14N of SignedInfo, SignatureValue.
    clear_xmlsec_error();
    C14NScope memo(rec.c14n);
    DSigCtx ctx = make_dsig_ctx(make_public_key(*cert));
    if (xmlSecDSigCtxVerify(ctx.get(), slot.node) < 0) {
        p.push_back("xmlsec could not process the signature: " + last_xmlsec_error());
        return r;
    }
    if (ctx->status != xmlSecDSigStatusSucceeded) {
        bool ref_failed = false;
        xmlSecSize n = xmlSecPtrListGetSize(&ctx->signedInfoReferences);
        for (xmlSecSize i = 0; i < n; ++i) {
            auto* rc = static_cast<xmlSecDSigReferenceCtxPtr>(
                xmlSecPtrListGetItem(&ctx->signedInfoReferences, i));
            if (rc != nullptr && rc->status != xmlSecDSigStatusSucceeded) {
                ref_failed = true;
                p.push_back(
                    "digest mismatch: Reference " +
                    std::string(rc->uri != nullptr ? reinterpret_cast<const char*>(rc->uri) : "?") +
                    " (the signed content changed)");
            }
        }
        if (!ref_failed) p.push_back("SignatureValue does not verify with the certificate's key");
        return r;
    }
    r.valid = true;
    return r;
}

}  // namespace hbsd::dsig::detail
