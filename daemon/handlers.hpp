// The handlers of the dispatch table, by role: handlers_service.cpp (org.varlink.service),
// handlers_tokens.cpp, handlers_session.cpp, handlers_sign.cpp, handlers_verify.cpp.
// Each reads its parameters with Request::params (unknown ones refused) and returns the reply.
#pragma once

#include "daemon/dispatch.hpp"

namespace hbsd::daemon::handlers {

boost::json::object get_info(Services&, Request&);
boost::json::object get_interface_description(Services&, Request&);

boost::json::object status(Services&, Request&);
boost::json::object list_tokens(Services&, Request&);
boost::json::object list_keys(Services&, Request&);

boost::json::object open_session(Services&, Request&);
boost::json::object close_session(Services&, Request&);
boost::json::object forget_pins(Services&, Request&);  // vn.hocbaso.SignerAdmin

boost::json::object sign(Services&, Request&);
boost::json::object sign_batch(Services&, Request&);

boost::json::object verify(Services&, Request&);

// handlers_admin.cpp
boost::json::object register_certificate(Services&, Request&);
boost::json::object approve_certificate(Services&, Request&);
boost::json::object revoke_certificate(Services&, Request&);
boost::json::object list_certificates(Services&, Request&);
boost::json::object assign_role(Services&, Request&);
boost::json::object unassign_role(Services&, Request&);
boost::json::object list_assignments(Services&, Request&);
boost::json::object set_year_lock(Services&, Request&);

// handlers_records.cpp
boost::json::object get_record(Services&, Request&);
boost::json::object request_revocation(Services&, Request&);
boost::json::object decide_revocation(Services&, Request&);
boost::json::object transfer_record(Services&, Request&);

// handlers_audit.cpp
boost::json::object get_audit_log(Services&, Request&);
boost::json::object verify_audit_log(Services&, Request&);
boost::json::object get_archived(Services&, Request&);  // vn.hocbaso.SignerAdmin

// Checks the parameters; the connection streams the events (requires_more).
boost::json::object watch_events(Services&, Request&);

// For Availability::pending entries.
boost::json::object pending(Services&, Request&);

}  // namespace hbsd::daemon::handlers
