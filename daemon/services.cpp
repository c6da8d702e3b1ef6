#include "daemon/services.hpp"

namespace hbsd::daemon {

std::shared_ptr<const policies::TrustStore> load_trust(const Config& config) {
    if (!config.trust_anchors) return nullptr;
    policies::TrustConfig tc;
    tc.anchors.emplace_back(*config.trust_anchors);
    for (const auto& f : config.crl_files) tc.crls.emplace_back(f);
    return policies::TrustStore::load(tc);
}

std::optional<std::string> trust_problem(const Services& services,
                                         std::span<const unsigned char> der,
                                         std::chrono::system_clock::time_point at) {
    const auto trust = services.trust();
    if (!trust) return "no trust anchors configured";
    const auto r = trust->check(der, at);
    if (r.ok()) return std::nullopt;
    return std::string(policies::to_string(r.problem)) + ": " + r.detail;
}

void note_tokens(Services& services, const std::vector<hsm::TokenInfo>& tokens) {
    std::uint32_t present = 0;
    for (const auto& t : tokens) {
        if (t.present)
            ++present;
        else
            services.sessions.end_token(t.uri);
    }
    services.tokens_present = present;
}

void housekeeping(Services& services, bool look_at_tokens) {
    services.sessions.sweep();
    if (look_at_tokens || services.sessions.active() > 0)
        note_tokens(services, services.tokens->list_tokens());
}

}  // namespace hbsd::daemon
