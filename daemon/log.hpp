// Log lines on stderr with sd-daemon(3) priority prefixes, so that journald files them at the
// right level. Never log a PIN, key material or a document body.
#pragma once

#include <cstdarg>

namespace hbsd::daemon::log {

void set_verbose(bool verbose) noexcept;
// Nothing but errors (fuzzing, tests that provoke refusals by the thousand).
void set_quiet(bool quiet) noexcept;
[[gnu::format(printf, 1, 2)]] void error(const char* fmt, ...) noexcept;
[[gnu::format(printf, 1, 2)]] void warning(const char* fmt, ...) noexcept;
[[gnu::format(printf, 1, 2)]] void info(const char* fmt, ...) noexcept;
[[gnu::format(printf, 1, 2)]] void debug(const char* fmt, ...) noexcept;

}  // namespace hbsd::daemon::log
