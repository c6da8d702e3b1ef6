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

namespace {

bool is_pin_error(const Error& e) noexcept {
    return e.code() == Errc::PinIncorrect || e.code() == Errc::PinLocked;
}

// The token as the current listing shows it, by canonical URI and incarnation.
std::optional<hsm::TokenInfo> listed(Services& s, const std::string& uri,
                                     std::uint64_t incarnation) {
    for (auto& t : current_tokens(s))
        if (t.uri == uri && t.incarnation == incarnation) return std::move(t);
    return std::nullopt;
}

// OpenSession with an empty PIN: the PIN the caller typed for this very token (pin_cache.hpp).
// Nothing cached, or cached for an earlier life of the token, is InvalidParameter "pin", and
// nothing reaches the token, so no PIN try is spent on a guess.
hsm::Login login_with_cached_pin(Services& s, uid_t uid, const std::string& token,
                                 std::string& pin) {
    if (!s.pin_cache.enabled()) throw Error::invalid_parameter("pin");
    pin.reserve(PinCache::kMaxPinBytes);
    const auto cached = s.pin_cache.find(uid, token, pin);
    if (!cached) throw Error::invalid_parameter("pin");
    // The token must still be the one the PIN was typed for, and present: the listing also
    // drops the entries of tokens that left (note_tokens).
    const auto now = listed(s, cached->uri, cached->incarnation);
    if (!now || !now->present || now->serial != cached->serial) {
        s.pin_cache.drop(uid, cached->uri);
        throw Error::invalid_parameter("pin");
    }
    try {
        hsm::Login login = s.tokens->login(cached->uri, pin);
        // Still cached: a card removal (drop_reader) while we looked and logged in has not
        // dropped it.
        if (login.incarnation() == cached->incarnation &&
            s.pin_cache.holds(uid, cached->uri, cached->incarnation))
            return login;
        // Replaced between the look and the login: this life of the token never got the PIN.
    } catch (const Error& e) {
        // A cached PIN that the token refuses is never tried again; one for a token that left
        // is of no further use either.
        if (is_pin_error(e) || e.code() == Errc::TokenNotPresent || e.code() == Errc::TokenNotFound)
            s.pin_cache.drop(uid, cached->uri);
        throw;
    }
    s.pin_cache.drop(uid, cached->uri);
    throw Error::invalid_parameter("pin");
}

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

    const bool cached = pin.empty();
    const auto reader_events = s.pin_cache.reader_events();
    hsm::Login login =
        cached ? login_with_cached_pin(s, r.caller.uid, token, pin) : s.tokens->login(token, pin);
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
        if (absent()) {
            s.pin_cache.drop(r.caller.uid, token_uri);
            throw Error::token_not_present(token_uri);
        }
    }
    if (!cached && s.pin_cache.enabled()) {
        // Bound to what the token is now: its serial, its incarnation and its reader.
        if (const auto t = listed(s, token_uri, login.incarnation()); t && t->present)
            s.pin_cache.remember(r.caller.uid,
                                 PinCache::Token{t->uri, t->serial, t->incarnation, t->reader},
                                 token, pin, reader_events);
    }
    auto opened =
        s.sessions.open(r.caller.uid, std::move(login), std::chrono::seconds(ttl), max_signatures);
    // The session id is the caller's bearer of the PIN's consent: never in an event. Whether
    // the PIN came from the cache is (never the PIN).
    s.publish({"session_opened", token_uri, std::nullopt, std::nullopt,
               "uid " + std::to_string(r.caller.uid) + (cached ? " (cached PIN)" : "")});
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

namespace hbsd::daemon::handlers {

// vn.hocbaso.SignerAdmin.ForgetPins: the explicit drop. A caller forgets only its own PINs.
json::object forget_pins(Services& s, Request& r) {
    const auto token = r.params.opt_string("token");
    r.params.finish();
    std::size_t n = 0;
    if (token)
        n = s.pin_cache.drop(r.caller.uid, *token);
    else
        n = s.pin_cache.drop(r.caller.uid);
    return {{"dropped", static_cast<std::int64_t>(n)}};
}

}  // namespace hbsd::daemon::handlers
