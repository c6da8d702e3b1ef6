// OpenSession, CloseSession.
#include "daemon/handlers.hpp"
#include "daemon/handlers_common.hpp"

#include <openssl/crypto.h>

namespace hbsd::daemon::handlers {
namespace json = boost::json;

namespace {

// Wipes the daemon's own copy of the PIN when it goes out of scope (the frame buffer it came in
// is freed right after the call; hsm/ keeps no copy).
struct PinGuard {
    std::string& pin;
    ~PinGuard() { OPENSSL_cleanse(pin.data(), pin.size()); }
};

}  // namespace

json::object open_session(Services& s, Request& r) {
    const std::string token = r.params.string("token");
    std::string pin = r.params.string("pin");
    PinGuard guard{pin};
    // The copy in the decoded call goes too.
    if (auto* p = r.call.parameters.if_contains("pin"); p && p->is_string())
        OPENSSL_cleanse(p->get_string().data(), p->get_string().size());
    const auto ttl_in = r.params.opt_integer("ttl_s");
    const auto max_signatures = r.params.opt_integer("max_signatures");
    r.params.finish();
    if (ttl_in && *ttl_in <= 0) throw Error::invalid_parameter("ttl_s");
    if (max_signatures && *max_signatures <= 0) throw Error::invalid_parameter("max_signatures");
    const auto& l = r.config->limits;
    // A ttl above the configured maximum is shortened, not refused: the reply says when the
    // session really ends.
    const std::int64_t ttl =
        std::min<std::int64_t>(ttl_in.value_or(l.session_ttl_s), l.session_ttl_max_s);

    hsm::Login login = s.tokens->login(token, pin);
    const std::string token_uri = login.token_uri();
    // A mapped token whose reader holds no card (token_watch.hpp) is not there to sign with,
    // even though its module still answers. The last look may predate a re-insertion: look
    // again before refusing.
    auto absent = [&] {
        std::lock_guard lock(s.presence_mu);
        const auto it = s.presence.find(token_uri);
        return it != s.presence.end() && !it->second;
    };
    if (absent()) {
        current_tokens(s);
        if (absent()) throw Error::token_not_present(token_uri);
    }
    auto opened =
        s.sessions.open(r.caller.uid, std::move(login), std::chrono::seconds(ttl), max_signatures);
    // The session id is the caller's bearer of the PIN's consent: never in an event.
    s.publish({"session_opened", token_uri, std::nullopt, std::nullopt,
               "uid " + std::to_string(r.caller.uid)});
    return {{"session", opened.id}, {"expires_at", rfc3339(opened.expires_at)}};
}

json::object close_session(Services& s, Request& r) {
    const std::string session = r.params.string("session");
    r.params.finish();
    const std::string token_uri = s.sessions.lease(r.caller.uid, session, r.call.method).token_uri;
    s.sessions.close(r.caller.uid, session, r.call.method);
    s.publish({"session_closed", token_uri, std::nullopt, std::nullopt,
               "uid " + std::to_string(r.caller.uid)});
    return {};
}

}  // namespace hbsd::daemon::handlers
