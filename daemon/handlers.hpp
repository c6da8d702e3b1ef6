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

boost::json::object sign(Services&, Request&);
boost::json::object sign_batch(Services&, Request&);

boost::json::object verify(Services&, Request&);

// For Availability::pending entries.
boost::json::object pending(Services&, Request&);

}  // namespace hbsd::daemon::handlers
