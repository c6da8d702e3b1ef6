// Administration (admin capability, checked by the dispatch table): the certificate registry,
// role assignments and year locks. Each call is one store transaction holding the change and
// its audit entry (Store::run_audited); a refusal is audited as well.
#include "daemon/audit_hook.hpp"
#include "daemon/handlers.hpp"
#include "daemon/handlers_admin_support.hpp"

#include <boost/json.hpp>

namespace hbsd::daemon::handlers {
namespace json = boost::json;

namespace {

store::Assignment read_assignment(Request& r) {
    store::Assignment a;
    a.school = r.params.string("school");
    a.year = r.params.string("year");
    a.role = *store::role_from_string(
        r.params.enumeration("role", {"subject_teacher", "homeroom_teacher", "principal"}));
    a.person = r.params.string("person");
    a.class_name = r.params.opt_string("class");
    a.subject = r.params.opt_string("subject");
    r.params.finish();
    return a;
}

std::string describe(const store::Assignment& a) {
    std::string d = "school " + a.school + ", year " + a.year + ", person " + a.person;
    if (a.class_name) d += ", class " + *a.class_name;
    if (a.subject) d += ", subject " + *a.subject;
    return d;
}

}  // namespace

json::object register_certificate(Services& s, Request& r) {
    const std::string pem = r.params.string("certificate");
    const auto kind =
        *store::certificate_kind_from_string(r.params.enumeration("kind", {"person", "school"}));
    const std::string school = r.params.string("school");
    const auto person = r.params.opt_string("person");
    r.params.finish();
    store::AuditInput a;
    a.detail = "kind " + std::string(store::to_string(kind)) + ", school " + school +
               (person ? ", person " + *person : "");
    return audited(s, r, a, [&] {
        const auto der = store::certificate_der_from(pem);
        // Only a certificate that chains to an anchor now enters the registry: an admin typo
        // must not become a signer.
        const auto& trust = r.trust;
        if (!trust) throw Error::certificate_invalid("untrusted");
        trust->require(der, std::chrono::system_clock::now());
        std::optional<std::string_view> p;
        if (person) p = *person;
        store::Certificate c;
        change_audited(s, r, a, [&] {
            c = the_store(s).register_certificate(der, kind, school, p);
            a.fingerprint = c.fingerprint;
        });
        s.publish({"certificate_changed", {}, {}, {}, "registered " + c.fingerprint});
        return json::object{{"certificate", c.to_json()}};
    });
}

json::object approve_certificate(Services& s, Request& r) {
    const std::string fp = r.params.string("fingerprint");
    r.params.finish();
    store::AuditInput a;
    a.fingerprint = fp;
    return audited(s, r, a, [&] {
        store::Certificate c;
        change_audited(s, r, a, [&] { c = the_store(s).approve_certificate(fp); });
        s.publish({"certificate_changed", {}, {}, {}, "approved " + fp});
        return json::object{{"certificate", c.to_json()}};
    });
}

json::object revoke_certificate(Services& s, Request& r) {
    const std::string fp = r.params.string("fingerprint");
    const std::string reason = r.params.string("reason");
    r.params.finish();
    store::AuditInput a;
    a.fingerprint = fp;
    a.detail = "reason: " + reason;
    return audited(s, r, a, [&] {
        store::Certificate c;
        change_audited(s, r, a, [&] { c = the_store(s).revoke_certificate(fp, reason); });
        s.publish({"certificate_changed", {}, {}, {}, "revoked " + fp});
        return json::object{{"certificate", c.to_json()}};
    });
}

json::object list_certificates(Services& s, Request& r) {
    const auto school = r.params.opt_string("school");
    r.params.finish();
    std::optional<std::string_view> sv;
    if (school) sv = *school;
    json::array out;
    for (const auto& c : the_store(s).list_certificates(sv)) out.push_back(c.to_json());
    return {{"certificates", std::move(out)}};
}

json::object assign_role(Services& s, Request& r) {
    const auto as = read_assignment(r);
    store::AuditInput a;
    a.role = std::string(store::to_string(as.role));
    a.detail = describe(as);
    return audited(s, r, a, [&] {
        change_audited(s, r, a, [&] { the_store(s).assign(as); });
        return json::object{};
    });
}

json::object unassign_role(Services& s, Request& r) {
    const auto as = read_assignment(r);
    store::AuditInput a;
    a.role = std::string(store::to_string(as.role));
    a.detail = describe(as);
    return audited(s, r, a, [&] {
        change_audited(s, r, a, [&] {
            if (!the_store(s).unassign(as)) *a.detail += " (was not assigned)";
        });
        return json::object{};
    });
}

json::object list_assignments(Services& s, Request& r) {
    const std::string school = r.params.string("school");
    const std::string year = r.params.string("year");
    r.params.finish();
    json::array out;
    for (const auto& a : the_store(s).list_assignments(school, year)) out.push_back(a.to_json());
    return {{"assignments", std::move(out)}};
}

json::object set_year_lock(Services& s, Request& r) {
    const std::string school = r.params.string("school");
    const std::string year = r.params.string("year");
    const bool locked = r.params.boolean("locked");
    r.params.finish();
    store::AuditInput a;
    a.detail = std::string(locked ? "lock" : "unlock") + " school " + school + ", year " + year;
    return audited(s, r, a, [&] {
        change_audited(s, r, a, [&] { the_store(s).set_year_lock(school, year, locked); });
        return json::object{};
    });
}

}  // namespace hbsd::daemon::handlers
