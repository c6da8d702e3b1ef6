// The hash-chained audit log; the chain is defined in audit.hpp.
#include "store/audit.hpp"

#include <algorithm>
#include <boost/json.hpp>

#include "protocol/error.hpp"
#include "protocol/hex.hpp"
#include "store/impl.hpp"
#include "store/text.hpp"

namespace hbsd::store {
namespace {

constexpr const char* kColumns =
    "seq, time, uid, method, outcome, record, role, fingerprint, document_before, "
    "document_after, detail, prev_hash, entry_hash";

boost::json::value opt(const std::optional<std::string>& s) {
    return s ? boost::json::value(*s) : boost::json::value(nullptr);
}

// Reads a row without judging it, so that verify() can report a row whose outcome text was
// tampered with instead of failing on it.
AuditEntry read_row(const Statement& st, bool* outcome_ok = nullptr) {
    AuditEntry e;
    e.seq = st.int64(0);
    e.time = st.text(1);
    e.uid = st.int64(2);
    e.method = st.text(3);
    const auto outcome = outcome_from_string(st.text(4));
    if (outcome_ok) *outcome_ok = outcome.has_value();
    e.outcome = outcome.value_or(Outcome::failed);
    e.record = st.optional_text(5);
    e.role = st.optional_text(6);
    e.fingerprint = st.optional_text(7);
    e.document_before = st.optional_text(8);
    e.document_after = st.optional_text(9);
    e.detail = st.optional_text(10);
    e.prev_hash = st.text(11);
    e.entry_hash = st.text(12);
    return e;
}

void check_hash_field(const std::optional<std::string>& s, const char* name) {
    // Only digests may enter the log: a caller passing a document body is a bug.
    if (s && !is_sha256_hex(*s))
        throw Error::internal(std::string("audit: ") + name + " is not a hex SHA-256");
}

}  // namespace

std::string_view to_string(Outcome outcome) noexcept {
    switch (outcome) {
        case Outcome::ok:
            return "ok";
        case Outcome::denied:
            return "denied";
        case Outcome::failed:
            return "failed";
    }
    return "failed";
}

std::optional<Outcome> outcome_from_string(std::string_view s) noexcept {
    if (s == "ok") return Outcome::ok;
    if (s == "denied") return Outcome::denied;
    if (s == "failed") return Outcome::failed;
    return std::nullopt;
}

std::string canonical_entry(const AuditEntry& e) {
    // boost::json::object keeps insertion order; this order is the definition (audit.hpp).
    boost::json::object o;
    o["seq"] = e.seq;
    o["time"] = e.time;
    o["uid"] = e.uid;
    o["method"] = e.method;
    o["outcome"] = to_string(e.outcome);
    o["record"] = opt(e.record);
    o["role"] = opt(e.role);
    o["fingerprint"] = opt(e.fingerprint);
    o["document_before"] = opt(e.document_before);
    o["document_after"] = opt(e.document_after);
    o["detail"] = opt(e.detail);
    return boost::json::serialize(o);
}

std::string compute_entry_hash(const AuditEntry& e) {
    return sha256_hex(e.prev_hash + canonical_entry(e));
}

boost::json::object AuditEntry::to_json() const {
    return {{"seq", seq},
            {"time", time},
            {"uid", uid},
            {"method", method},
            {"outcome", to_string(outcome)},
            {"record", opt(record)},
            {"role", opt(role)},
            {"fingerprint", opt(fingerprint)},
            {"document_before", opt(document_before)},
            {"document_after", opt(document_after)},
            {"detail", opt(detail)},
            {"prev_hash", prev_hash},
            {"entry_hash", entry_hash}};
}

boost::json::object AuditVerification::to_json() const {
    return {
        {"ok", ok},
        {"entries", entries},
        {"head", head},
        {"first_bad", first_bad ? boost::json::value(*first_bad) : boost::json::value(nullptr)}};
}

namespace detail {

std::int64_t audit_append(Database& db, const AuditInput& in) {
    if (in.method.empty()) throw Error::internal("audit: empty method");
    check_hash_field(in.document_before, "document_before");
    check_hash_field(in.document_after, "document_after");

    AuditEntry e;
    e.seq = 1;
    e.prev_hash = std::string(kGenesisHash);
    {
        // The caller holds the write lock (BEGIN IMMEDIATE), so the head cannot move under us.
        auto head = db.prepare("SELECT seq, entry_hash FROM audit ORDER BY seq DESC LIMIT 1");
        if (head.step()) {
            e.seq = head.int64(0) + 1;
            e.prev_hash = head.text(1);
        }
    }
    e.time = in.time ? *in.time : now_rfc3339();
    e.uid = in.uid;
    e.method = in.method;
    e.outcome = in.outcome;
    e.record = in.record;
    e.role = in.role;
    e.fingerprint = in.fingerprint;
    e.document_before = in.document_before;
    e.document_after = in.document_after;
    e.detail = in.detail;
    e.entry_hash = compute_entry_hash(e);

    auto st = db.prepare(std::string("INSERT INTO audit (") + kColumns +
                         ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)");
    st.bind(1, e.seq).bind(2, e.time).bind(3, e.uid).bind(4, e.method);
    st.bind(5, to_string(e.outcome)).bind(6, e.record).bind(7, e.role).bind(8, e.fingerprint);
    st.bind(9, e.document_before).bind(10, e.document_after).bind(11, e.detail);
    st.bind(12, e.prev_hash).bind(13, e.entry_hash);
    st.run();
    return e.seq;
}

}  // namespace detail

std::int64_t Store::append_audit(const AuditInput& entry) {
    std::lock_guard lock(impl_->mutex);
    Transaction tx(impl_->db);
    const auto seq = detail::audit_append(impl_->db, entry);
    tx.commit();
    return seq;
}

std::int64_t Store::run_audited(const AuditInput& entry, const std::function<void()>& change) {
    std::lock_guard lock(impl_->mutex);
    Transaction tx(impl_->db);
    change();
    const auto seq = detail::audit_append(impl_->db, entry);
    tx.commit();
    return seq;
}

std::vector<AuditEntry> Store::list_audit(std::int64_t after, std::int64_t limit) const {
    limit = std::clamp<std::int64_t>(limit, 0, 10000);
    std::lock_guard lock(impl_->mutex);
    auto st = impl_->db.prepare(std::string("SELECT ") + kColumns +
                                " FROM audit WHERE seq > ?1 ORDER BY seq LIMIT ?2");
    st.bind(1, after).bind(2, limit);
    std::vector<AuditEntry> out;
    while (st.step()) out.push_back(read_row(st));
    return out;
}

AuditVerification Store::verify_audit() const {
    // Walking a long log takes a while: on a connection of its own, and without the mutex,
    // signing goes on meanwhile (WAL readers do not block the writer). The read transaction
    // gives one consistent snapshot.
    auto db = Database::open(impl_->path);
    ReadTransaction snapshot(db);

    AuditVerification v;
    v.head = std::string(kGenesisHash);
    std::int64_t expected_seq = 1;
    auto st = db.prepare(std::string("SELECT ") + kColumns + " FROM audit ORDER BY seq");
    while (st.step()) {
        bool outcome_ok = true;
        const AuditEntry e = read_row(st, &outcome_ok);
        ++v.entries;
        // A gap in seq means a deleted row; the link (prev_hash) then fails too, but naming
        // the first seq after the gap is the same either way.
        const bool bad = e.seq != expected_seq || e.prev_hash != v.head || !outcome_ok ||
                         compute_entry_hash(e) != e.entry_hash;
        if (bad && !v.first_bad) {
            v.ok = false;
            v.first_bad = e.seq;
        }
        v.head = e.entry_hash;
        expected_seq = e.seq + 1;
    }
    return v;
}

}  // namespace hbsd::store
