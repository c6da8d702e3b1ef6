#include "daemon/services.hpp"

#include "daemon/token_watch.hpp"

namespace hbsd::daemon {

std::shared_ptr<const policies::TrustStore> load_trust(const Config& config) {
    if (!config.trust_anchors) return nullptr;
    policies::TrustConfig tc;
    tc.anchors.emplace_back(*config.trust_anchors);
    for (const auto& f : config.crl_files) tc.crls.emplace_back(f);
    return policies::TrustStore::load(tc);
}

std::optional<std::string> trust_problem(const std::shared_ptr<const policies::TrustStore>& trust,
                                         std::span<const unsigned char> der,
                                         std::chrono::system_clock::time_point at) {
    if (!trust) return "no trust anchors configured";
    const auto r = trust->check(der, at);
    if (r.ok()) return std::nullopt;
    return std::string(policies::to_string(r.problem)) + ": " + r.detail;
}

void note_tokens(Services& services, const std::vector<hsm::TokenInfo>& tokens) {
    std::uint32_t present = 0;
    std::vector<const hsm::TokenInfo*> inserted, removed, came_back;
    // One URI may be listed twice (a gone token and its successor elsewhere): present if any is.
    std::map<std::string, const hsm::TokenInfo*> now;
    for (const auto& t : tokens) {
        // An empty reader's slot URI is not a token; it never "arrives".
        if (t.label.empty() && !t.present) continue;
        auto& slot = now[t.uri];
        if (!slot || t.present) slot = &t;
    }
    {
        // Listings race (housekeeping, ListTokens, a PC/SC event): whoever holds the lock
        // compares with the last one, so each change is announced once.
        std::lock_guard lock(services.presence_mu);
        for (const auto& [uri, t] : now) {
            auto [it, fresh] = services.presence.try_emplace(uri, t->present);
            // Present at both looks but not the same life of the token: it left and came back
            // in between (an HSM restarted and its module re-initialised, a card pulled and put
            // back faster than the listings), which is a removal and an insertion too.
            bool restarted = false;
            if (t->present && t->incarnation != 0) {
                auto [inc, first] = services.incarnations.try_emplace(uri, t->incarnation);
                restarted = !first && !fresh && it->second && inc->second != t->incarnation;
                inc->second = t->incarnation;
            }
            if (services.presence_seeded &&  // what was there at start-up is no news
                ((fresh && t->present) || (!fresh && it->second != t->present)))
                (t->present ? inserted : removed).push_back(t);
            else if (services.presence_seeded && restarted)
                came_back.push_back(t);
            it->second = t->present;
        }
        // No longer listed at all (its slot now holds another token): gone too.
        for (auto& [uri, was_present] : services.presence) {
            if (!was_present || now.contains(uri)) continue;
            was_present = false;
            services.pin_cache.drop_token(uri);
            services.publish({"token_removed", uri, std::nullopt, std::nullopt, std::nullopt});
        }
        services.presence_seeded = true;
    }
    // A cached PIN belongs to one life of one token (pin_cache.hpp).
    for (const auto& [uri, t] : now) {
        if (t->present)
            services.pin_cache.drop_other_incarnations(uri, t->incarnation);
        else
            services.pin_cache.drop_token(uri);
    }
    // Removal first, so that a watcher sees token_removed before the session_expired events
    // ending the token's sessions.
    for (const auto* t : removed)
        services.publish({"token_removed", t->uri, t->reader, std::nullopt, t->label});
    for (const auto* t : came_back) {
        services.publish({"token_removed", t->uri, t->reader, std::nullopt, t->label});
        // Sessions of its earlier life are dead (their Logins answer TokenNotPresent); those
        // opened on this one since stay.
        services.sessions.end_token(t->uri, t->incarnation);
    }
    for (const auto& t : tokens) {
        if (t.present) {
            ++present;
            continue;
        }
        // A gone token's successor under the same URI keeps its sessions.
        const auto successor = now.find(t.uri);
        if (successor != now.end() && successor->second->present)
            services.sessions.end_token(t.uri, successor->second->incarnation);
        else
            services.sessions.end_token(t.uri);
    }
    for (const auto* t : inserted)
        services.publish({"token_inserted", t->uri, t->reader, std::nullopt, t->label});
    for (const auto* t : came_back)
        services.publish({"token_inserted", t->uri, t->reader, std::nullopt, t->label});
    services.tokens_present = present;
}

std::vector<hsm::TokenInfo> current_tokens(Services& services) {
    auto tokens = services.tokens->list_tokens();
    apply_token_mapping(services, tokens);
    note_tokens(services, tokens);
    return tokens;
}

void housekeeping(Services& services, bool look_at_tokens) {
    services.sessions.sweep();
    services.pin_cache.sweep();
    if (look_at_tokens || services.sessions.active() > 0) current_tokens(services);
}

}  // namespace hbsd::daemon
