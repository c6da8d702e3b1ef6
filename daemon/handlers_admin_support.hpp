// Shared by the administration, records and audit handlers: the store they need, and the
// audit of their changes and refusals.
#pragma once

#include "daemon/audit_hook.hpp"
#include "daemon/dispatch.hpp"

#include <boost/json/object.hpp>
#include <functional>

namespace hbsd::daemon::handlers {

inline store::Store& the_store(const Services& s) {
    if (!s.store) throw Error::internal("no store");
    return *s.store;
}

inline std::string method_of(const Request& r) {
    return std::string(protocol::split_method(r.call.method).second);
}

// `change` (store calls) and the audit entry `a` (uid, method and outcome filled in from the
// request) in one store transaction: both or neither. `change` may still fill in `a`. Then
// the journal copy.
inline void change_audited(const Services& s, const Request& r, store::AuditInput& a,
                           const std::function<void()>& change) {
    a.uid = r.caller.uid;
    a.method = method_of(r);
    a.outcome = store::Outcome::ok;
    const auto seq = the_store(s).run_audited(a, change);
    log_audit(seq, a);
}

// Runs `f`; an hbsd::Error it throws is audited as a refusal (with what `base` knows) and
// passed on unchanged.
template <class F>
boost::json::object audited(const Services& s, const Request& r, const store::AuditInput& base,
                            F&& f) {
    try {
        return f();
    } catch (const Error& e) {
        audit_refusal(s, r.caller.uid, method_of(r), e, base);
        throw;
    }
}

}  // namespace hbsd::daemon::handlers
