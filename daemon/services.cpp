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
    if (!services.trust) return "no trust anchors configured";
    const auto r = services.trust->check(der, at);
    if (r.ok()) return std::nullopt;
    return std::string(policies::to_string(r.problem)) + ": " + r.detail;
}

void housekeeping(Services& services) {
    services.sessions.sweep();
    if (services.sessions.active() == 0) return;
    for (const auto& t : services.tokens->list_tokens())
        if (!t.present) services.sessions.end_token(t.uri);
}

}  // namespace hbsd::daemon
