// Shared by the administration, records and audit handlers: the store they need, and the
// audit of their changes and refusals.
#pragma once

#include "daemon/audit_hook.hpp"
#include "daemon/dispatch.hpp"

#include <boost/json/object.hpp>

namespace hbsd::daemon::handlers {

inline store::Store& the_store(const Services& s) {
    if (!s.store) throw Error::internal("no store");
    return *s.store;
}

inline std::string method_of(const Request& r) {
    return std::string(protocol::split_method(r.call.method).second);
}

// The change is made: its audit entry, uid and method filled in from the request.
inline void audit_change(const Services& s, const Request& r, store::AuditInput a) {
    a.uid = r.caller.uid;
    a.method = method_of(r);
    a.outcome = store::Outcome::ok;
    (void)audit(s, a);
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
