// The service manager protocol of Type=notify units (sd_notify(3)): READY=1, STATUS=,
// RELOADING=1, STOPPING=1, WATCHDOG=1. Outside systemd (no $NOTIFY_SOCKET: started by hand,
// in tests, in the package check) every call is a cheap no-op, so the daemon calls them
// unconditionally. None of them throws: a lost notification must never take the daemon down.
#pragma once

#include <chrono>
#include <optional>
#include <string_view>

namespace hbsd::systemd {

// Each returns true when the message reached the service manager, false when there is none
// ($NOTIFY_SOCKET unset) or sending failed.

// Startup is complete: the socket is listening and calls are served.
bool notify_ready() noexcept;
// One line shown by `systemctl status hbsd`. Line breaks become spaces: a status built from
// token labels or reader names must never smuggle in a second assignment such as READY=1.
bool notify_status(std::string_view status) noexcept;
// A reload (SIGHUP) has begun; send notify_ready() when it is done.
bool notify_reloading() noexcept;
// Shutdown has begun (systemd then waits TimeoutStopSec= for the exit).
bool notify_stopping() noexcept;
// The keep-alive of WatchdogSec=; send it from the event loop itself (a timer on the I/O
// thread), so that a stuck loop stops sending it and systemd restarts the daemon.
bool notify_watchdog() noexcept;

// The WatchdogSec= interval for this process ($WATCHDOG_USEC, checked against
// $WATCHDOG_PID), or nullopt when no watchdog is armed. Send notify_watchdog() at half of it.
std::optional<std::chrono::microseconds> watchdog_interval() noexcept;

}  // namespace hbsd::systemd
