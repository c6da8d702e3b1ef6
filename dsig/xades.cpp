#include "dsig/xades.hpp"

#include <xmlsec/strings.h>

#include <cstring>
#include <ctime>

#include "dsig/profile.hpp"
#include "protocol/error.hpp"

namespace hbsd::dsig::detail {
namespace {

constexpr char kSha256[] = "http://www.w3.org/2001/04/xmlenc#sha256";

xmlNodePtr child(xmlNodePtr parent, xmlNsPtr ns, const char* name,
                 const std::string* content = nullptr) {
    xmlNodePtr n = xmlNewTextChild(parent, ns, BAD_CAST name,
                                   content != nullptr ? BAD_CAST content->c_str() : nullptr);
    if (n == nullptr) throw Error::internal("xmlNewTextChild failed");
    return n;
}

// xsd:dateTime in UTC as we write it: YYYY-MM-DDTHH:MM:SS, optional fraction, then 'Z'.
bool is_utc_datetime(std::string_view t) {
    constexpr std::string_view shape = "dddd-dd-ddTdd:dd:dd";
    if (t.size() < shape.size() + 1 || t.back() != 'Z') return false;
    for (std::size_t i = 0; i < shape.size(); ++i) {
        bool ok = shape[i] == 'd' ? (t[i] >= '0' && t[i] <= '9') : t[i] == shape[i];
        if (!ok) return false;
    }
    std::string_view rest = t.substr(shape.size(), t.size() - shape.size() - 1);
    if (rest.empty()) return true;
    if (rest.size() < 2 || rest.size() > 10 || rest[0] != '.') return false;
    for (char c : rest.substr(1))
        if (c < '0' || c > '9') return false;
    return true;
}

bool has_text_only(xmlNodePtr node) {
    for (xmlNodePtr c = node->children; c != nullptr; c = c->next)
        if (c->type != XML_TEXT_NODE) return false;
    return true;
}

// The element children of `node`, nullptr-padded to `n`; false when there are more than n.
bool children(xmlNodePtr node, std::size_t n, std::vector<xmlNodePtr>& out) {
    out.assign(n, nullptr);
    std::size_t i = 0;
    for (xmlNodePtr c = first_element(node); c != nullptr; c = next_element(c), ++i) {
        if (i >= n) return false;
        out[i] = c;
    }
    return true;
}

}  // namespace

bool only_attributes(xmlNodePtr node, std::initializer_list<const char*> allowed) {
    for (xmlAttrPtr a = node->properties; a != nullptr; a = a->next) {
        bool ok = false;
        if (a->ns == nullptr)
            for (const char* name : allowed)
                ok = ok || std::strcmp(reinterpret_cast<const char*>(a->name), name) == 0;
        if (!ok) return false;
    }
    return true;
}

std::string format_signing_time(std::chrono::system_clock::time_point t) {
    std::time_t secs =
        std::chrono::system_clock::to_time_t(std::chrono::floor<std::chrono::seconds>(t));
    std::tm tm{};
    if (gmtime_r(&secs, &tm) == nullptr) throw Error::internal("gmtime_r failed");
    char buf[32];
    if (std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        throw Error::internal("strftime failed");
    return buf;
}

xmlNodePtr add_qualifying_properties(xmlNodePtr object, const std::string& sig_id, Stage stage,
                                     const CertInfo& cert, const std::string& signing_time) {
    xmlNsPtr ds = xmlSearchNsByHref(object->doc, object, BAD_CAST kDsNs);
    xmlNodePtr qp = xmlNewChild(object, nullptr, BAD_CAST "QualifyingProperties", nullptr);
    if (qp == nullptr || ds == nullptr)
        throw Error::internal("building QualifyingProperties failed");
    xmlNsPtr xa = xmlNewNs(qp, BAD_CAST kXadesNs, BAD_CAST "xades");
    if (xa == nullptr) throw Error::internal("xmlNewNs failed");
    xmlSetNs(qp, xa);
    std::string target = "#" + sig_id;
    xmlNewProp(qp, BAD_CAST "Target", BAD_CAST target.c_str());
    xmlNodePtr sp = child(qp, xa, "SignedProperties");
    std::string sp_id = sig_id + "-SP";
    xmlNewProp(sp, BAD_CAST "Id", BAD_CAST sp_id.c_str());
    xmlNodePtr ssp = child(sp, xa, "SignedSignatureProperties");
    child(ssp, xa, "SigningTime", &signing_time);
    xmlNodePtr c = child(child(ssp, xa, "SigningCertificateV2"), xa, "Cert");
    xmlNodePtr cd = child(c, xa, "CertDigest");
    xmlNodePtr dm = child(cd, ds, "DigestMethod");
    xmlNewProp(dm, BAD_CAST "Algorithm", BAD_CAST kSha256);
    std::string digest = base64(sha256(cert.der));
    child(cd, ds, "DigestValue", &digest);
    std::string role(to_string(stage));
    child(child(child(ssp, xa, "SignerRoleV2"), xa, "ClaimedRoles"), xa, "ClaimedRole", &role);
    return sp;
}

std::optional<std::string> check_qualifying_properties(xmlNodePtr object, const std::string& sig_id,
                                                       Stage stage, const CertInfo* cert,
                                                       std::vector<std::string>& problems) {
    std::optional<std::string> signing_time;
    auto fail = [&](std::string p) {
        problems.push_back("XAdES: " + std::move(p));
        return signing_time;
    };
    std::vector<xmlNodePtr> k;
    if (!only_attributes(object, {})) return fail("ds:Object carries attributes");
    if (!children(object, 1, k) || !is(k[0], kXadesNs, "QualifyingProperties"))
        return fail("ds:Object must hold exactly one xades:QualifyingProperties");
    xmlNodePtr qp = k[0];
    if (!only_attributes(qp, {"Target"}))
        return fail("unexpected attribute on QualifyingProperties");
    if (attr(qp, "Target") != "#" + sig_id)
        fail("QualifyingProperties/@Target is \"" + attr(qp, "Target").value_or("") +
             "\", expected \"#" + sig_id + "\"");
    if (!children(qp, 1, k) || !is(k[0], kXadesNs, "SignedProperties"))
        return fail("QualifyingProperties must hold exactly SignedProperties");
    xmlNodePtr sp = k[0];
    if (!only_attributes(sp, {"Id"}) || attr(sp, "Id") != sig_id + "-SP")
        fail("SignedProperties/@Id must be \"" + sig_id + "-SP\"");
    if (!children(sp, 1, k) || !is(k[0], kXadesNs, "SignedSignatureProperties"))
        return fail("SignedProperties must hold exactly SignedSignatureProperties");
    xmlNodePtr ssp = k[0];
    if (!children(ssp, 3, k) || !is(k[0], kXadesNs, "SigningTime") ||
        !is(k[1], kXadesNs, "SigningCertificateV2") || !is(k[2], kXadesNs, "SignerRoleV2"))
        return fail(
            "SignedSignatureProperties must hold SigningTime, SigningCertificateV2, SignerRoleV2");
    xmlNodePtr st = k[0], scv2 = k[1], role = k[2];
    for (xmlNodePtr n : k)
        if (!only_attributes(n, {}))
            fail("unexpected attribute on " + std::string(reinterpret_cast<const char*>(n->name)));

    // SigningTime: xsd:dateTime in UTC.
    std::string t = text(st);
    if (!has_text_only(st) || !is_utc_datetime(t))
        fail("SigningTime \"" + t + "\" is not a UTC xsd:dateTime");
    else
        signing_time = t;

    // SigningCertificateV2: the KeyInfo certificate, by SHA-256.
    if (!children(scv2, 1, k) || !is(k[0], kXadesNs, "Cert")) {
        fail("SigningCertificateV2 must hold exactly one Cert");
    } else {
        xmlNodePtr certn = k[0];
        if (!only_attributes(certn, {})) fail("unexpected attribute on Cert");
        if (!children(certn, 2, k) || !is(k[0], kXadesNs, "CertDigest") ||
            (k[1] != nullptr && !is(k[1], kXadesNs, "IssuerSerialV2"))) {
            fail("Cert must hold CertDigest and optionally IssuerSerialV2");
        } else {
            xmlNodePtr cd = k[0];
            if (!only_attributes(cd, {}) || (k[1] != nullptr && !only_attributes(k[1], {})))
                fail("unexpected attribute in Cert");
            if (!children(cd, 2, k) || !is(k[0], kDsNs, "DigestMethod") ||
                !is(k[1], kDsNs, "DigestValue") || first_element(k[0]) != nullptr ||
                !has_text_only(k[1])) {
                fail("CertDigest must hold ds:DigestMethod and ds:DigestValue");
            } else if (attr(k[0], "Algorithm") != kSha256 ||
                       !only_attributes(k[0], {"Algorithm"}) || !only_attributes(k[1], {})) {
                fail("CertDigest must use SHA-256");
            } else if (cert != nullptr) {
                auto d = unbase64(text(k[1]));
                if (!d || *d != sha256(cert->der))
                    fail("SigningCertificateV2 does not match the KeyInfo certificate");
            }
        }
    }

    // SignerRoleV2: exactly the stage of the place.
    xmlNodePtr roles = first_element(role);
    xmlNodePtr claimed = first_element(roles);
    if (!is(roles, kXadesNs, "ClaimedRoles") || next_element(roles) != nullptr ||
        !is(claimed, kXadesNs, "ClaimedRole") || next_element(claimed) != nullptr ||
        !has_text_only(claimed) || !only_attributes(roles, {}) || !only_attributes(claimed, {})) {
        fail("SignerRoleV2 must hold exactly one ClaimedRoles/ClaimedRole");
    } else if (text(claimed) != to_string(stage)) {
        fail("ClaimedRole \"" + text(claimed) + "\" does not match the place (" +
             std::string(to_string(stage)) + ")");
    }
    return signing_time;
}

}  // namespace hbsd::dsig::detail
