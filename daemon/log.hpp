// Log lines on stderr with sd-daemon(3) priority prefixes, so that journald files them at the
// right level. Never log a PIN, key material or a document body.
#pragma once

#include <cstdarg>
#include <optional>
#include <string_view>

namespace hbsd::daemon::log {

// sd-daemon(3) priorities.
enum class Level { error = 3, warning = 4, info = 6, debug = 7 };

// "error", "warning", "info", "debug" (log_level in hbsd.toml); nullopt for anything else.
std::optional<Level> level_from_name(std::string_view name) noexcept;
// The lowest priority logged (the configuration's log_level; a reload changes it).
void set_level(Level level) noexcept;
// -v: debug lines whatever the level says (the command line wins over the file).
void set_verbose(bool verbose) noexcept;
// Nothing but errors (fuzzing, tests that provoke refusals by the thousand).
void set_quiet(bool quiet) noexcept;
[[gnu::format(printf, 1, 2)]] void error(const char* fmt, ...) noexcept;
[[gnu::format(printf, 1, 2)]] void warning(const char* fmt, ...) noexcept;
[[gnu::format(printf, 1, 2)]] void info(const char* fmt, ...) noexcept;
[[gnu::format(printf, 1, 2)]] void debug(const char* fmt, ...) noexcept;

}  // namespace hbsd::daemon::log
