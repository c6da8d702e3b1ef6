// Status, ListTokens, ListKeys: read-only views of the tokens.
#include "daemon/handlers.hpp"
#include "daemon/handlers_common.hpp"

namespace hbsd::daemon::handlers {
namespace json = boost::json;

namespace {

// Listing tokens is also how the daemon notices a token that went away: its sessions end.
json::array tokens_json(Services& s) {
    const auto tokens = current_tokens(s);
    json::array out;
    for (const auto& t : tokens) out.push_back(json::value_from(to_wire(t)));
    return out;
}

}  // namespace

json::object status(Services& s, Request& r) {
    r.params.finish();
    const auto up = std::chrono::steady_clock::now() - s.started;
    return {{"version", HBSD_VERSION},
            {"uptime_s", std::chrono::duration_cast<std::chrono::seconds>(up).count()},
            {"tokens", tokens_json(s)},
            {"sessions", static_cast<std::int64_t>(s.sessions.active())},
            {"signatures", s.signatures.load()},
            // No persistent store yet: idempotency results live in memory (see idempotency.hpp).
            {"store", "memory"}};
}

json::object list_tokens(Services& s, Request& r) {
    r.params.finish();
    return {{"tokens", tokens_json(s)}};
}

json::object list_keys(Services& s, Request& r) {
    const std::string token = r.params.string("token");
    r.params.finish();
    json::array keys;
    for (const auto& k : s.tokens->list_keys(token)) keys.push_back(json::value_from(to_wire(k)));
    return {{"keys", std::move(keys)}};
}

}  // namespace hbsd::daemon::handlers
