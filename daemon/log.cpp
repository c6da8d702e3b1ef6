#include "daemon/log.hpp"

#include <atomic>
#include <cstdio>

namespace hbsd::daemon::log {
namespace {

std::atomic<bool> g_verbose{false};
std::atomic<bool> g_quiet{false};

void emit(const char* prefix, const char* fmt, va_list ap) noexcept {
    char line[2048];
    std::vsnprintf(line, sizeof line, fmt, ap);
    // One write per line, so that lines of different threads do not interleave.
    std::fprintf(stderr, "%shbsd: %s\n", prefix, line);
}

}  // namespace

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
HBSD_LOG_FN(warning, "<4>", !g_quiet.load())
HBSD_LOG_FN(info, "<6>", !g_quiet.load())
HBSD_LOG_FN(debug, "<7>", g_verbose.load() && !g_quiet.load())
#undef HBSD_LOG_FN

}  // namespace hbsd::daemon::log
