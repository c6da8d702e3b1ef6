#include "daemon/log_fields.hpp"

#include "daemon/log.hpp"

#include <sys/uio.h>
#include <systemd/sd-journal.h>

#include <cstdlib>

namespace hbsd::daemon::log {
namespace {

// JOURNAL_STREAM is set by systemd when stderr is connected to the journal (systemd.exec(5)):
// only then do separate fields reach anyone; a terminal or a test gets the plain line.
bool to_journal() noexcept {
    static const bool yes = std::getenv("JOURNAL_STREAM") != nullptr;
    return yes;
}

}  // namespace

void structured(int priority, std::string_view message_id, const std::string& message,
                const Fields& fields) noexcept {
    try {
        if (to_journal()) {
            std::vector<std::string> items;
            items.reserve(fields.size() + 4);
            items.push_back("MESSAGE=hbsd: " + message);
            items.push_back("MESSAGE_ID=" + std::string(message_id));
            items.push_back("PRIORITY=" + std::to_string(priority));
            items.push_back("SYSLOG_IDENTIFIER=hbsd");
            for (const auto& [k, v] : fields) items.push_back(k + "=" + v);
            std::vector<iovec> iov;
            iov.reserve(items.size());
            for (auto& s : items) iov.push_back({s.data(), s.size()});
            if (sd_journal_sendv(iov.data(), static_cast<int>(iov.size())) >= 0) return;
        }
        std::string line = message;
        for (const auto& [k, v] : fields) line += " " + k + "=" + v;
        if (priority <= 3)
            error("%s", line.c_str());
        else if (priority == 4)
            warning("%s", line.c_str());
        else
            info("%s", line.c_str());
    } catch (...) {
        // Out of memory while logging: the audit row in the store is what counts.
    }
}

}  // namespace hbsd::daemon::log
