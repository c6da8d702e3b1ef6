#include "store/text.hpp"

#include <ctime>

namespace hbsd::store {

std::string rfc3339(std::chrono::system_clock::time_point t) {
    const std::time_t secs =
        std::chrono::system_clock::to_time_t(std::chrono::floor<std::chrono::seconds>(t));
    std::tm tm{};
    gmtime_r(&secs, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

std::string now_rfc3339() {
    return rfc3339(std::chrono::system_clock::now());
}

bool is_sha256_hex(std::string_view s) noexcept {
    if (s.size() != 64) return false;
    for (char c : s)
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
    return true;
}

}  // namespace hbsd::store
