// commit_signature: the one transaction that makes a signature exist (DESIGN.md: "A crash at
// any point leaves either the whole signing recorded or none of it").
#include <boost/json.hpp>

#include "protocol/error.hpp"
#include "store/impl.hpp"
#include "store/text.hpp"

namespace hbsd::store {

std::int64_t Store::commit_signature(const SignatureCommit& c, std::string* document_after_sha) {
    if (c.record.empty()) throw Error::internal("commit_signature: empty record");
    if (c.school.empty()) throw Error::internal("commit_signature: empty school");
    if (c.year.empty()) throw Error::internal("commit_signature: empty year");
    if (c.request_id && c.request_id->empty()) throw Error::invalid_parameter("request_id");
    const std::string time = rfc3339(c.time.value_or(Clock::now()));
    const std::string result_text = boost::json::serialize(c.result);

    std::lock_guard lock(impl_->mutex);
    auto& db = impl_->db;
    Transaction tx(db);

    // A twin of this request (same uid and request_id) may have committed since the caller's
    // replay() check; the first one wins and this one writes nothing.
    if (c.request_id) {
        if (auto stored = detail::idempotency_find(db, c.uid, *c.request_id)) {
            if (stored->method != c.method || stored->request_hash != c.request_hash)
                throw Error::invalid_parameter("request_id");
            return stored->audit_seq;
        }
    }

    // The policy ran before the key was used; an admin may have locked the year, or revoked or
    // transferred the record, since. Checking again under the write lock keeps such a
    // signature out of the store (the caller then discards it and replies with the refusal).
    {
        auto lock_st = db.prepare("SELECT 1 FROM year_locks WHERE school = ?1 AND year = ?2");
        lock_st.bind(1, c.school).bind(2, c.year);
        if (lock_st.step())
            throw Error::policy("year_locked", "year " + c.year + " of school " + c.school +
                                                   " was locked while signing");
    }
    if (const auto rec = detail::record_find(db, c.record)) {
        if (rec->state == RecordStateKind::revoked ||
            rec->state == RecordStateKind::revocation_requested)
            throw Error::policy("record_revoked",
                                "record " + c.record + " is " + std::string(to_string(rec->state)));
        if (rec->school != c.school)
            throw Error::policy("record_transferred",
                                "record " + c.record + " is now held by school " + rec->school);
    }

    const std::string after_sha = detail::archive_put(db, c.document_after);

    if (!detail::record_find(db, c.record)) detail::record_create(db, c.record, c.school, time);
    if (c.issues_year) detail::record_issue_year(db, c.record, c.year, time);

    AuditInput a;
    a.uid = c.uid;
    a.method = c.method;
    a.outcome = Outcome::ok;
    a.record = c.record;
    a.role = c.role;
    a.fingerprint = c.fingerprint;
    a.document_before = c.document_before_sha;
    a.document_after = after_sha;
    a.detail = c.detail;
    a.time = time;
    const std::int64_t seq = detail::audit_append(db, a);

    if (c.signature_value_sha) {
        // OR IGNORE: the same SignatureValue twice would be the same signature; the first
        // audit entry that made it stays the one Verify finds.
        db.prepare(
              "INSERT OR IGNORE INTO signatures (signature_value_sha, audit_seq) VALUES (?1, ?2)")
            .bind(1, *c.signature_value_sha)
            .bind(2, seq)
            .run();
    }

    if (c.request_id) {
        db.prepare(
              "INSERT INTO idempotency (uid, request_id, method, request_hash, result, "
              "audit_seq, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)")
            .bind(1, c.uid)
            .bind(2, *c.request_id)
            .bind(3, c.method)
            .bind(4, c.request_hash)
            .bind(5, result_text)
            .bind(6, seq)
            .bind(7, time)
            .run();
    }

    tx.commit();
    if (document_after_sha != nullptr) *document_after_sha = after_sha;
    return seq;
}

}  // namespace hbsd::store
