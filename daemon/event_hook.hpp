// The one seam through which registry, records and signing announce what changed. The events
// stream (WatchEvents) plugs its bus in here; until it does, events go nowhere. Kept apart from
// the stream's own code so that publishers do not depend on how events are delivered.
#pragma once

#include <functional>
#include <optional>
#include <string>

namespace hbsd::daemon {

// The contract's Event, as publishers fill it (time is added by whoever delivers it).
struct Event {
    std::string kind;  // signed, record_changed, certificate_changed, ...
    std::optional<std::string> token;
    std::optional<std::string> reader;
    std::optional<std::string> record;
    std::optional<std::string> detail;
};

// Must not block and must not throw: it is called on worker threads after the change is
// committed, and a slow subscriber must never hold up a signature.
using EventHook = std::function<void(const Event&)>;

}  // namespace hbsd::daemon
