#include "policies/registry.hpp"

#include <utility>

#include "protocol/error.hpp"
#include "protocol/hex.hpp"
#include "store/text.hpp"

namespace hbsd::policies {
namespace {

using Clock = std::chrono::system_clock;

struct Refusal {
    std::string reason;
    std::string detail;
};

// dsig::to_string lives in hbsd_dsig; the registry needs only the names, not the library.
std::string_view stage_name(dsig::Stage s) noexcept {
    switch (s) {
        case dsig::Stage::subject_teacher:
            return "subject_teacher";
        case dsig::Stage::homeroom_teacher:
            return "homeroom_teacher";
        case dsig::Stage::principal:
            return "principal";
        case dsig::Stage::school:
            return "school";
    }
    return "school";
}

std::optional<store::Role> role_of(dsig::Stage s) noexcept {
    switch (s) {
        case dsig::Stage::subject_teacher:
            return store::Role::subject_teacher;
        case dsig::Stage::homeroom_teacher:
            return store::Role::homeroom_teacher;
        case dsig::Stage::principal:
            return store::Role::principal;
        case dsig::Stage::school:
            return std::nullopt;
    }
    return std::nullopt;
}

std::string place(const SigningRequest& r) {
    std::string s = "school " + r.school + ", year " + r.year;
    if (r.stage != dsig::Stage::principal && r.stage != dsig::Stage::school)
        s += ", class " + r.class_name;
    if (r.stage == dsig::Stage::subject_teacher) s += ", subject " + r.subject.value_or("?");
    return s;
}

// The key fits the stage: seal for the school stage, a person's assigned key otherwise.
std::optional<Refusal> role_problem(const store::Store& store, const store::Certificate& c,
                                    const SigningRequest& r) {
    const auto role = role_of(r.stage);
    if (!role) {
        if (c.kind != store::CertificateKind::school)
            return Refusal{"wrong_key",
                           "the school stage needs the school's seal certificate, not the "
                           "person certificate of " +
                               c.person.value_or("?")};
        if (c.school != r.school)
            return Refusal{"wrong_key", "this is the seal of school " + c.school +
                                            ", the document is of school " + r.school};
        return std::nullopt;
    }
    if (c.kind == store::CertificateKind::school)
        return Refusal{"wrong_key", "the seal of school " + c.school + " cannot sign as " +
                                        std::string(stage_name(r.stage))};
    const std::string& person = *c.person;  // set for every person certificate (schema CHECK)
    if (!store.is_assigned(r.school, r.year, *role, person, r.class_name, r.subject))
        return Refusal{"not_assigned", person + " is not assigned as " +
                                           std::string(stage_name(r.stage)) + " for " + place(r)};
    return std::nullopt;
}

std::string revoked_text(const store::Certificate& c) {
    return "certificate " + c.fingerprint + " was revoked in the registry at " +
           c.revoked_at.value_or("?") + ": " + c.revoke_reason.value_or("");
}

}  // namespace

SigningRequest SigningRequest::from(const dsig::YearReport& year, std::string_view record,
                                    dsig::Stage stage, std::optional<std::string_view> subject,
                                    std::span<const unsigned char> certificate_der) {
    SigningRequest r;
    r.certificate_der = certificate_der;
    r.stage = stage;
    r.record = record;
    r.school = year.school;
    r.year = year.year;
    r.class_name = year.class_name;
    if (subject) r.subject = std::string(*subject);
    return r;
}

Registry::Registry(const store::Store& store, std::shared_ptr<const TrustStore> trust)
    : store_(store), trust_(std::move(trust)) {
    if (!trust_) throw Error::internal("registry: no trust store");
}

void Registry::check_signing(const SigningRequest& r, Clock::time_point now) const {
    const std::string fp = sha256_hex(r.certificate_der);
    const auto cert = store_.find_certificate(fp);
    if (!cert) throw Error::policy("not_registered", "certificate " + fp + " is not registered");
    if (cert->status == store::CertificateStatus::pending)
        throw Error::policy("not_registered",
                            "certificate " + fp + " is registered but not approved");
    if (cert->status == store::CertificateStatus::revoked)
        throw Error::policy("untrusted_certificate", revoked_text(*cert));

    if (const auto t = trust_->check(r.certificate_der, now); !t)
        throw Error::policy("untrusted_certificate",
                            std::string(to_string(t.problem)) + ": " + t.detail);

    if (auto refusal = role_problem(store_, *cert, r))
        throw Error::policy(refusal->reason, refusal->detail);

    if (store_.is_year_locked(r.school, r.year))
        throw Error::policy("year_locked",
                            "year " + r.year + " of school " + r.school + " is locked");

    if (const auto rec = store_.find_record(r.record)) {
        if (rec->state == store::RecordStateKind::revoked ||
            rec->state == store::RecordStateKind::revocation_requested)
            throw Error::policy("record_revoked",
                                "record " + r.record + " is " + std::string(to_string(rec->state)));
        if (rec->school != r.school)
            throw Error::policy("record_transferred",
                                "record " + r.record + " is now held by school " + rec->school);
    }
}

RegistryAssessment Registry::assess(const SigningRequest& r, Clock::time_point at) const {
    RegistryAssessment a;
    const std::string fp = sha256_hex(r.certificate_der);

    const auto t = trust_->check(r.certificate_der, at);
    a.trusted = t.ok();
    if (!t)
        a.problems.push_back("untrusted_certificate: " + std::string(to_string(t.problem)) + ": " +
                             t.detail);

    const auto cert = store_.find_certificate(fp);
    if (!cert) {
        a.problems.push_back("not_registered: certificate " + fp + " is not registered");
        return a;
    }
    // Same format (RFC 3339 UTC, whole seconds), so text order is time order.
    const std::string when = store::rfc3339(at);
    if (cert->status == store::CertificateStatus::revoked && cert->revoked_at &&
        *cert->revoked_at <= when) {
        a.trusted = false;
        a.problems.push_back("untrusted_certificate: " + revoked_text(*cert));
    }
    if (cert->status == store::CertificateStatus::pending) {
        a.problems.push_back("not_registered: certificate " + fp +
                             " is registered but not approved");
        return a;
    }
    if (auto refusal = role_problem(store_, *cert, r)) {
        a.problems.push_back(refusal->reason + ": " + refusal->detail);
        return a;
    }
    a.registered = true;
    return a;
}

}  // namespace hbsd::policies
