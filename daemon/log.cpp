#include "daemon/log.hpp"

#include <atomic>
#include <cstdio>

namespace hbsd::daemon::log {
namespace {

std::atomic<bool> g_verbose{false};
std::atomic<bool> g_quiet{false};
std::atomic<int> g_level{static_cast<int>(Level::info)};

bool at(Level l) noexcept {
    // -v wins over log_level: whoever runs hbsd -v by hand wants every line.
    const int level = g_verbose.load() ? static_cast<int>(Level::debug) : g_level.load();
    return !g_quiet.load() && level >= static_cast<int>(l);
}

void emit(const char* prefix, const char* fmt, va_list ap) noexcept {
    char line[2048];
    std::vsnprintf(line, sizeof line, fmt, ap);
    // One write per line, so that lines of different threads do not interleave.
    std::fprintf(stderr, "%shbsd: %s\n", prefix, line);
}

}  // namespace

std::optional<Level> level_from_name(std::string_view name) noexcept {
    if (name == "error") return Level::error;
    if (name == "warning") return Level::warning;
    if (name == "info") return Level::info;
    if (name == "debug") return Level::debug;
    return std::nullopt;
}

void set_level(Level level) noexcept {
    g_level = static_cast<int>(level);
}
void set_verbose(bool verbose) noexcept {
    g_verbose = verbose;
}
void set_quiet(bool quiet) noexcept {
    g_quiet = quiet;
}

#define HBSD_LOG_FN(name, prefix, cond)        \
    void name(const char* fmt, ...) noexcept { \
        if (!(cond)) return;                   \
        va_list ap;                            \
        va_start(ap, fmt);                     \
        emit(prefix, fmt, ap);                 \
        va_end(ap);                            \
    }
HBSD_LOG_FN(error, "<3>", true)
HBSD_LOG_FN(warning, "<4>", at(Level::warning))
HBSD_LOG_FN(info, "<6>", at(Level::info))
HBSD_LOG_FN(debug, "<7>", at(Level::debug))
#undef HBSD_LOG_FN

}  // namespace hbsd::daemon::log
