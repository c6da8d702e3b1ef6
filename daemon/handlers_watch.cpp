// WatchEvents. The dispatcher has already refused a call without "more" (ExpectedMore); the
// connection streams the events once this returns (Connection::follow_events), so the handler
// only checks that no parameters came.
#include "daemon/handlers.hpp"

namespace hbsd::daemon::handlers {

boost::json::object watch_events(Services&, Request& r) {
    r.params.finish();
    return {};
}

}  // namespace hbsd::daemon::handlers
