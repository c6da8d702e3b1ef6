// store/: hbsd's durable state in one SQLite file in the state directory (DESIGN.md, "Storage,
// audit, nothing lost"): the certificate registry, role assignments, year locks, record states
// with their history, idempotent results, the archive of signed documents and the hash-chained
// audit log.
//
// Every failure is an hbsd::Error (protocol/error.hpp): the contract's errors where the caller
// can act on them (CertificateNotFound, CertificateInvalid, RecordNotFound, InvalidParameter,
// PolicyViolation, Busy), Internal for anything of SQLite's own. Each mutating call is one
// transaction: on any error nothing is changed.
//
// Thread-safety: a Store may be used from many threads at once (calls are serialised on one
// connection). Several processes may open the same file; SQLite's locks serialise them.
//
// Times are RFC 3339 UTC strings with whole seconds ("2026-11-30T00:07:18Z"); fingerprints and
// document hashes are lowercase hex SHA-256.
#pragma once

#include <boost/json/value.hpp>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "store/audit.hpp"

namespace hbsd::store {

using Clock = std::chrono::system_clock;
using Bytes = std::vector<unsigned char>;

// ---- certificates ---------------------------------------------------------------------------

enum class CertificateKind { person, school };
enum class CertificateStatus { pending, approved, revoked };

std::string_view to_string(CertificateKind kind) noexcept;
std::string_view to_string(CertificateStatus status) noexcept;
std::optional<CertificateKind> certificate_kind_from_string(std::string_view s) noexcept;

// The contract's Certificate, plus what the store keeps beside it.
struct Certificate {
    std::string fingerprint;
    Bytes der;
    std::string subject;  // RFC 2253, UTF-8
    std::string issuer;   // RFC 2253, UTF-8
    std::string serial;   // lowercase hex, no leading zeros ("0" for zero)
    std::string not_before, not_after;
    CertificateKind kind = CertificateKind::person;
    std::string school;
    std::optional<std::string> person;  // set exactly for kind person
    CertificateStatus status = CertificateStatus::pending;
    std::optional<std::string> revoke_reason;
    std::optional<std::string> revoked_at;  // lets Verify honour signatures made before
    std::string registered_at;

    // The contract's Certificate object (without der, revoke_reason, revoked_at).
    boost::json::object to_json() const;
};

// A certificate file's content as DER: accepts one PEM CERTIFICATE block or DER itself.
// Throws CertificateInvalid("unparseable") when it is neither.
Bytes certificate_der_from(std::string_view pem_or_der);

// ---- assignments ----------------------------------------------------------------------------

// The roles an admin assigns; the school seal is a certificate of kind school, not a role.
enum class Role { subject_teacher, homeroom_teacher, principal };

std::string_view to_string(Role role) noexcept;
std::optional<Role> role_from_string(std::string_view s) noexcept;

// class is required for subject_teacher and homeroom_teacher and must be absent for principal
// (the whole school); subject is required exactly for subject_teacher. Otherwise
// InvalidParameter("class") / InvalidParameter("subject").
struct Assignment {
    std::string school;
    std::string year;
    Role role = Role::subject_teacher;
    std::string person;
    std::optional<std::string> class_name;
    std::optional<std::string> subject;

    boost::json::object to_json() const;
};

// ---- records --------------------------------------------------------------------------------

enum class RecordStateKind { active, revocation_requested, revoked, transferred };
std::string_view to_string(RecordStateKind state) noexcept;

// The contract's RecordState. `school` is the school that holds the record now; state
// transferred means it came from another school (see history) and is active at `school`.
struct RecordState {
    std::string record;
    std::string school;
    RecordStateKind state = RecordStateKind::active;
    std::vector<std::string> issued_years;  // oldest first
    // One line per event, oldest first: "<time> <event>[: <detail>]", e.g.
    // "2026-11-30T00:07:18Z created: school 94000123".
    std::vector<std::string> history;

    boost::json::object to_json() const;
};

// ---- idempotency and signing ----------------------------------------------------------------

struct StoredResult {
    std::string method;
    std::string request_hash;
    boost::json::value result;  // as given to commit_signature
    std::int64_t audit_seq = 0;
    Bytes document;  // the archived signed document of that audit entry
};

// Everything one successful signature writes, in one transaction (commit_signature).
struct SignatureCommit {
    std::int64_t uid = 0;
    std::optional<std::string> request_id;  // absent: no idempotency row, the rest as usual
    std::string method = "Sign";            // "Sign" or "SignBatch"
    std::string request_hash;               // hex digest of the request; compared on repeats
    std::optional<std::string> document_before_sha;  // hex SHA-256 of the input document
    Bytes document_after;                            // the signed output, archived
    std::string record;
    std::string school;
    std::string year;
    std::string role;  // audit role text: subject_teacher ... school
    std::string fingerprint;
    // hex SHA-256 of the raw SignatureValue, indexed so that Verify can find when hbsd made a
    // signature (DESIGN.md, "Policies"); optional for callers that do not have it.
    std::optional<std::string> signature_value_sha;
    // True for the school seal: the year becomes issued in the record's state.
    bool issues_year = false;
    // Stored for replays; should not repeat the document (the archive holds it).
    boost::json::value result;
    std::optional<std::string> detail;      // audit detail; never a PIN, key or document body
    std::optional<Clock::time_point> time;  // default: now
};

// When and by which audit entry hbsd made a signature.
struct SignatureMade {
    std::int64_t audit_seq = 0;
    std::string time;
    std::string fingerprint;
};

// ---- the store ------------------------------------------------------------------------------

class Store {
  public:
    // Opens or creates the file and applies pending schema migrations in one transaction.
    // A file whose schema is newer than this build is refused (Internal).
    static Store open(const std::filesystem::path& path);

    Store(Store&&) noexcept;
    Store& operator=(Store&&) noexcept;
    ~Store();

    // The schema version in force (PRAGMA user_version).
    int schema_version() const;
    static int latest_schema_version() noexcept;

    // -- certificates
    // Parses the DER (CertificateInvalid("unparseable") if it does not), stores it pending.
    // kind person needs a person code (InvalidParameter("person")); kind school must not have
    // one. Registering the same certificate again with the same kind/school/person returns it
    // unchanged; with different ones InvalidParameter("certificate").
    Certificate register_certificate(std::span<const unsigned char> der, CertificateKind kind,
                                     std::string_view school,
                                     std::optional<std::string_view> person);
    // pending -> approved; approved stays approved; revoked: CertificateInvalid("revoked").
    Certificate approve_certificate(std::string_view fingerprint);
    // Any -> revoked (final). Revoking again keeps the first reason and time.
    Certificate revoke_certificate(std::string_view fingerprint, std::string_view reason);
    // CertificateNotFound if unknown.
    Certificate get_certificate(std::string_view fingerprint) const;
    std::optional<Certificate> find_certificate(std::string_view fingerprint) const;
    // Oldest registration first; all schools when school is absent.
    std::vector<Certificate> list_certificates(std::optional<std::string_view> school = {}) const;

    // -- assignments
    void assign(const Assignment& a);  // idempotent
    // Returns false when there was no such assignment (not an error: the end state is reached).
    bool unassign(const Assignment& a);
    std::vector<Assignment> list_assignments(std::string_view school, std::string_view year) const;
    // class is ignored for principal, subject for everyone but subject_teacher.
    bool is_assigned(std::string_view school, std::string_view year, Role role,
                     std::string_view person, std::optional<std::string_view> class_name,
                     std::optional<std::string_view> subject) const;

    // -- year locks
    void set_year_lock(std::string_view school, std::string_view year, bool locked);
    bool is_year_locked(std::string_view school, std::string_view year) const;

    // -- records
    // RecordNotFound if unknown.
    RecordState get_record(std::string_view record) const;
    std::optional<RecordState> find_record(std::string_view record) const;
    // Creates an active record held by `school` on its first signature; an existing record is
    // returned unchanged (the policy, not this call, judges a school mismatch).
    RecordState ensure_record(std::string_view record, std::string_view school);
    // active/transferred -> revocation_requested. Refused: revoked -> PolicyViolation
    // record_revoked; already requested -> InvalidParameter("record").
    RecordState request_revocation(std::string_view record, std::string_view reason);
    // revocation_requested -> revoked (approved) or back to the state before the request.
    // Any other state: InvalidParameter("record").
    RecordState decide_revocation(std::string_view record, bool approved,
                                  std::string_view reference);
    // active/transferred -> transferred, held by to_school. Refused: revoked or revocation
    // requested -> PolicyViolation record_revoked; to_school == current school ->
    // InvalidParameter("to_school").
    RecordState transfer_record(std::string_view record, std::string_view to_school);
    // Marks a year issued (school seal present); idempotent. RecordNotFound if unknown.
    RecordState add_issued_year(std::string_view record, std::string_view year);

    // -- audit
    // Appends one entry, computing prev_hash and entry_hash; returns its seq.
    std::int64_t append_audit(const AuditInput& entry);
    // Runs `change` (mutating calls of this Store, e.g. approve_certificate) and appends
    // `entry` in ONE transaction: both are written or neither. `entry` is read after `change`
    // ran, so `change` may still fill it in. Returns the entry's seq. Calls that open a read
    // snapshot of their own (lookups of the idempotency table, the archive, the audit) must
    // not be made inside `change`.
    std::int64_t run_audited(const AuditInput& entry, const std::function<void()>& change);
    // Entries with seq > after, oldest first, at most limit (capped at 10000).
    std::vector<AuditEntry> list_audit(std::int64_t after = 0, std::int64_t limit = 1000) const;
    // Walks the whole chain on its own connection; other calls are not held up meanwhile.
    AuditVerification verify_audit() const;

    // -- idempotency and signing
    // The stored result of (uid, request_id), if any. Does not compare anything.
    std::optional<StoredResult> lookup(std::int64_t uid, std::string_view request_id) const;
    // The replay check of a request: nullopt when (uid, request_id) is new; the stored result
    // when it was made by the same method with the same request hash; InvalidParameter
    // ("request_id") when the id was used for a different request.
    std::optional<StoredResult> replay(std::int64_t uid, std::string_view request_id,
                                       std::string_view method,
                                       std::string_view request_hash) const;
    // One signature, atomically and durably: the archive copy of document_after, the record
    // (created if new; the year marked issued for the seal) and its history, the audit entry,
    // the signature index and the idempotency row. Returns the audit seq. When the request id
    // is already stored (a concurrent twin), nothing is written and the stored seq is returned
    // (or InvalidParameter("request_id") if it was a different request). Because the policy
    // ran before the token signed, the year lock and record state are checked again inside
    // the transaction: PolicyViolation year_locked / record_revoked / record_transferred, and
    // nothing is written. `document_after_sha`, if given, receives the archive's hex SHA-256 of
    // document_after when this call wrote it (left unchanged for a twin).
    std::int64_t commit_signature(const SignatureCommit& commit,
                                  std::string* document_after_sha = nullptr);

    // -- archive
    // The signed document that audit entry `seq` produced (its document_after), if archived.
    std::optional<Bytes> archived_document(std::int64_t seq) const;
    std::optional<Bytes> archived_by_hash(std::string_view sha256) const;
    // When hbsd made the signature whose raw SignatureValue hashes to `signature_value_sha`.
    std::optional<SignatureMade> find_signature(std::string_view signature_value_sha) const;

    struct Impl;

  private:
    explicit Store(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

}  // namespace hbsd::store
