// The archive: every signed output, kept by its SHA-256 (content-addressed, so a document
// signed twice into identical bytes is stored once).
#include "protocol/error.hpp"
#include "protocol/hex.hpp"
#include "store/impl.hpp"
#include "store/text.hpp"

namespace hbsd::store {
namespace {

std::optional<Bytes> by_hash(Database& db, std::string_view sha256) {
    auto st = db.prepare("SELECT document FROM archive WHERE sha256 = ?1");
    st.bind(1, sha256);
    if (!st.step()) return std::nullopt;
    return st.blob(0);
}

}  // namespace

namespace detail {

std::string archive_put(Database& db, std::span<const unsigned char> document) {
    std::string sha = sha256_hex(document);
    db.prepare("INSERT OR IGNORE INTO archive (sha256, document, stored_at) VALUES (?1, ?2, ?3)")
        .bind(1, sha)
        .bind_blob(2, document)
        .bind(3, now_rfc3339())
        .run();
    return sha;
}

}  // namespace detail

std::optional<Bytes> Store::archived_document(std::int64_t seq) const {
    std::lock_guard lock(impl_->mutex);
    auto& db = impl_->db;
    ReadTransaction snapshot(db);
    auto st = db.prepare("SELECT document_after FROM audit WHERE seq = ?1");
    st.bind(1, seq);
    if (!st.step() || st.is_null(0)) return std::nullopt;
    return by_hash(db, st.text(0));
}

std::optional<Bytes> Store::archived_by_hash(std::string_view sha256) const {
    std::lock_guard lock(impl_->mutex);
    return by_hash(impl_->db, sha256);
}

std::optional<SignatureMade> Store::find_signature(std::string_view signature_value_sha) const {
    std::lock_guard lock(impl_->mutex);
    auto st = impl_->db.prepare(
        "SELECT a.seq, a.time, coalesce(a.fingerprint, '') FROM signatures s "
        "JOIN audit a ON a.seq = s.audit_seq WHERE s.signature_value_sha = ?1");
    st.bind(1, signature_value_sha);
    if (!st.step()) return std::nullopt;
    return SignatureMade{st.int64(0), st.text(1), st.text(2)};
}

}  // namespace hbsd::store
