// The registry policy (DESIGN.md, "Policies"): is this certificate registered, approved, not
// revoked, trusted, and its holder assigned to this stage for the school, year and class (and
// subject) the document names; is the year open and the record still the school's to sign?
//
// Reasons (PolicyViolation, the contract's words) and the choices made here:
// - not_registered: no certificate with this fingerprint, or registered but still pending
//   (an admin has not approved it: it is not yet part of the registry);
// - untrusted_certificate: revoked in the registry by an admin, or the trust check fails
//   (expired, not yet valid, revoked by CRL, no chain to a root, bad key usage, weak key);
//   the detail names which;
// - wrong_key: a person's certificate for the school stage, another school's seal, or a
//   school seal for a person's stage;
// - not_assigned: the certificate's person is not assigned to that role for that school,
//   year and class (and subject for subject_teacher);
// - year_locked: the school's year is locked;
// - record_revoked: the record is revoked or its revocation is requested;
// - record_transferred: the record is now held by another school than the document's.
// Checks run in that order; the first failing one is reported. The signing order
// (order/earlier_invalid/already_signed) is policies/order's job.
//
// Thread-safety: const methods may run concurrently (the Store and TrustStore are). To reload
// trust anchors, build a new Registry with the new TrustStore.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "dsig/document.hpp"
#include "policies/trust.hpp"
#include "store/store.hpp"

namespace hbsd::policies {

// The identity of the signature being made (or checked), as read from the document: school,
// year and class from dsig's YearReport, the record code, the stage and subject.
struct SigningRequest {
    std::span<const unsigned char> certificate_der;
    dsig::Stage stage = dsig::Stage::subject_teacher;
    std::string record;
    std::string school;
    std::string year;
    std::string class_name;
    std::optional<std::string> subject;  // subject_teacher only

    static SigningRequest from(const dsig::YearReport& year, std::string_view record,
                               dsig::Stage stage, std::optional<std::string_view> subject,
                               std::span<const unsigned char> certificate_der);
};

// Verify's view of one existing signature.
struct RegistryAssessment {
    // chains to a root and was not revoked (CRL or registry) at the time judged
    bool trusted = false;
    // registered and approved (a later registry revocation does not undo that for signatures
    // made before it) and assigned to that stage for that school, year, class (and subject)
    bool registered = false;
    // One line per reason either is false, each starting with the PolicyViolation reason Sign
    // would give, e.g. "untrusted_certificate: expired: certificate has expired (depth 0)".
    std::vector<std::string> problems;
};

class Registry {
  public:
    Registry(const store::Store& store, std::shared_ptr<const TrustStore> trust);

    // For Sign, judged at hbsd's own clock `now`. Throws Error::policy(reason, detail) for the
    // first failing check (see above); returns normally when all hold.
    void check_signing(const SigningRequest& request,
                       std::chrono::system_clock::time_point now) const;

    // For Verify: the same certificate and assignment checks, judged at `at` (the time hbsd's
    // audit recorded for the signature, else a timestamp's, else now), without throwing
    // PolicyViolation. Year locks and record states do not make an existing signature wrong
    // and are not looked at.
    RegistryAssessment assess(const SigningRequest& request,
                              std::chrono::system_clock::time_point at) const;

    const TrustStore& trust() const noexcept { return *trust_; }

  private:
    const store::Store& store_;
    std::shared_ptr<const TrustStore> trust_;
};

}  // namespace hbsd::policies
