// Structured log entries for the audit trail: to the journal with their own fields
// (MESSAGE_ID per kind, HBSD_SEQ, HBSD_METHOD, ...) when stderr is the journal's stream, else
// one "key=value" line on stderr. Never a PIN, key or document body (hashes only).
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace hbsd::daemon::log {

using Fields = std::vector<std::pair<std::string, std::string>>;

// `priority` is syslog's (6 info, 4 warning, 3 error); `message_id` 32 lowercase hex digits.
void structured(int priority, std::string_view message_id, const std::string& message,
                const Fields& fields) noexcept;

}  // namespace hbsd::daemon::log
