#include "systemd/notify.hpp"

#include <systemd/sd-daemon.h>
#include <time.h>

#include <cstdio>
#include <string>

namespace hbsd::systemd {
namespace {

// The environment is kept (unset_environment = 0): the daemon notifies many times over its
// life, and sd_notify reads $NOTIFY_SOCKET on every call.
bool send(const char* message) noexcept {
    return sd_notify(0, message) > 0;
}

}  // namespace

bool notify_ready() noexcept {
    return send("READY=1");
}

bool notify_status(std::string_view status) noexcept {
    try {
        std::string m = "STATUS=";
        m.reserve(m.size() + status.size());
        for (char c : status) m += (c == '\n' || c == '\r' || c == '\0') ? ' ' : c;
        return send(m.c_str());
    } catch (...) {  // std::bad_alloc: the status line is not worth dying for
        return false;
    }
}

bool notify_reloading() noexcept {
    // MONOTONIC_USEC lets systemd >= 253 (Type=notify-reload) tell this reload from an older
    // one; systemd 252 ignores the field.
    timespec ts{};
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    char m[96];
    std::snprintf(m, sizeof m, "RELOADING=1\nMONOTONIC_USEC=%llu",
                  static_cast<unsigned long long>(ts.tv_sec) * 1000000ull +
                      static_cast<unsigned long long>(ts.tv_nsec) / 1000ull);
    return send(m);
}

bool notify_stopping() noexcept {
    return send("STOPPING=1");
}

bool notify_watchdog() noexcept {
    return send("WATCHDOG=1");
}

std::optional<std::chrono::microseconds> watchdog_interval() noexcept {
    uint64_t usec = 0;
    if (sd_watchdog_enabled(0, &usec) <= 0 || usec == 0) return std::nullopt;
    return std::chrono::microseconds(usec);
}

}  // namespace hbsd::systemd
