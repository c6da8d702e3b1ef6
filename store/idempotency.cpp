// Idempotent results: a retried request_id gets the first result back, never a second
// signature.
#include <boost/json.hpp>

#include "protocol/error.hpp"
#include "store/impl.hpp"

namespace hbsd::store {

namespace detail {

std::optional<StoredResult> idempotency_find(Database& db, std::int64_t uid,
                                             std::string_view request_id) {
    auto st = db.prepare(
        "SELECT i.method, i.request_hash, i.result, i.audit_seq, ar.document "
        "FROM idempotency i JOIN audit a ON a.seq = i.audit_seq "
        "LEFT JOIN archive ar ON ar.sha256 = a.document_after "
        "WHERE i.uid = ?1 AND i.request_id = ?2");
    st.bind(1, uid).bind(2, request_id);
    if (!st.step()) return std::nullopt;
    StoredResult r;
    r.method = st.text(0);
    r.request_hash = st.text(1);
    boost::system::error_code ec;
    r.result = boost::json::parse(st.text(2), ec);
    if (ec) throw Error::internal("store: stored result is not JSON: " + ec.message());
    r.audit_seq = st.int64(3);
    if (!st.is_null(4)) r.document = st.blob(4);
    return r;
}

}  // namespace detail

std::optional<StoredResult> Store::lookup(std::int64_t uid, std::string_view request_id) const {
    std::lock_guard lock(impl_->mutex);
    ReadTransaction snapshot(impl_->db);
    return detail::idempotency_find(impl_->db, uid, request_id);
}

std::optional<StoredResult> Store::replay(std::int64_t uid, std::string_view request_id,
                                          std::string_view method,
                                          std::string_view request_hash) const {
    auto stored = lookup(uid, request_id);
    if (stored && (stored->method != method || stored->request_hash != request_hash))
        throw Error::invalid_parameter("request_id");
    return stored;
}

}  // namespace hbsd::store
