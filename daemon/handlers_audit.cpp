// The audit log over the socket (GetAuditLog, VerifyAuditLog) and hbsd's own extension
// interface vn.hocbaso.SignerAdmin, which keeps the fixed contract untouched: GetArchived(seq)
// returns the signed document an audit entry produced, so that no signed output is ever lost
// and hbsctl never has to read the database itself.
#include "daemon/handlers.hpp"
#include "daemon/handlers_admin_support.hpp"
#include "protocol/hex.hpp"

#include <boost/json.hpp>

namespace hbsd::daemon {

std::string_view signer_admin_interface_description() noexcept {
    return R"(# hbsd's administrative extension of vn.hocbaso.Signer (that contract is fixed, so
# what it lacks lives here). Same transport and capabilities; every method here needs admin,
# but ForgetPins, which needs sign.
interface vn.hocbaso.SignerAdmin

# The signed document that the audit entry `seq` produced (its document_after), from the
# archive. Unknown seq, or an entry that produced no document: InvalidParameter (seq).
method GetArchived(seq: int) -> (document: string, sha256: string)

# Forgets the caller's own cached PINs ([pin_cache] in hbsd.toml): for the token named
# (by the URI given when the PIN was typed, or its canonical URI), or all of them. The next
# OpenSession needs the PIN typed again. Sessions already open stay open.
method ForgetPins(token: ?string) -> (dropped: int)

error InvalidParameter (parameter: string)
)";
}

namespace handlers {
namespace json = boost::json;

json::object get_audit_log(Services& s, Request& r) {
    const auto after = r.params.opt_integer("after").value_or(0);
    const auto limit = r.params.opt_integer("limit").value_or(1000);
    r.params.finish();
    if (after < 0) throw Error::invalid_parameter("after");
    if (limit < 1 || limit > 10000) throw Error::invalid_parameter("limit");
    json::array out;
    for (const auto& e : the_store(s).list_audit(after, limit)) out.push_back(e.to_json());
    return {{"entries", std::move(out)}};
}

json::object verify_audit_log(Services& s, Request& r) {
    r.params.finish();
    return the_store(s).verify_audit().to_json();
}

json::object get_archived(Services& s, Request& r) {
    const auto seq = r.params.integer("seq");
    r.params.finish();
    if (seq < 1) throw Error::invalid_parameter("seq");
    auto doc = the_store(s).archived_document(seq);
    if (!doc) throw Error::invalid_parameter("seq");
    std::string text(doc->begin(), doc->end());
    std::string sha = sha256_hex(text);
    return {{"document", std::move(text)}, {"sha256", std::move(sha)}};
}

}  // namespace handlers
}  // namespace hbsd::daemon
