#include "daemon/handlers_common.hpp"

#include "policies/registry.hpp"

#include <cstdio>
#include <ctime>

namespace hbsd::daemon {

std::string rfc3339(std::chrono::system_clock::time_point t) {
    const std::time_t s = std::chrono::system_clock::to_time_t(t);
    std::tm tm{};
    gmtime_r(&s, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

protocol::Token to_wire(const hsm::TokenInfo& t) {
    return {t.uri, t.label, t.manufacturer, t.model, t.serial, t.present, t.reader, t.logged_in};
}

protocol::Key to_wire(const hsm::KeyInfo& k) {
    return {k.uri,  k.label,           k.algorithm == hsm::KeyAlgorithm::rsa ? "rsa" : "ec",
            k.bits, k.certificate_pem, k.fingerprint};
}

protocol::SignatureInfo to_wire(const dsig::SignatureReport& s,
                                const std::shared_ptr<const policies::TrustStore>& trust,
                                std::chrono::system_clock::time_point trust_time) {
    protocol::SignatureInfo w;
    w.id = s.id;
    w.role = std::string(dsig::to_string(s.role));
    w.subject = s.subject;
    w.year = s.year;
    w.signer = s.signer;
    w.fingerprint = s.fingerprint;
    w.signing_time = s.signing_time;
    w.valid = s.valid;
    w.in_order = s.in_order;
    w.problems = s.problems;
    if (s.certificate_der.empty()) {
        w.problems.emplace_back("no certificate in KeyInfo");
    } else if (auto why = trust_problem(trust, s.certificate_der, trust_time)) {
        w.problems.push_back(std::move(*why));
    } else {
        w.trusted = true;
    }
    w.registered = false;
    w.problems.emplace_back(kNoRegistry);
    return w;
}

std::optional<std::chrono::system_clock::time_point> parse_rfc3339(std::string_view text) {
    std::tm tm{};
    int consumed = 0;
    const std::string t(text);
    if (std::sscanf(t.c_str(), "%4d-%2d-%2dT%2d:%2d:%2dZ%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                    &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &consumed) != 6 ||
        static_cast<std::size_t>(consumed) != t.size())
        return std::nullopt;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    const std::time_t secs = ::timegm(&tm);
    if (secs == static_cast<std::time_t>(-1)) return std::nullopt;
    return std::chrono::system_clock::from_time_t(secs);
}

void judge_registry(protocol::SignatureInfo& w, const dsig::SignatureReport& s,
                    const dsig::YearReport* year, std::string_view record, const Services& services,
                    const Snapshot& in_force, std::chrono::system_clock::time_point at) {
    // Registry checks off (tests, benches of the signing path): "registry not configured" stays.
    if (!services.store || !in_force.config->registry_checks) return;
    w.problems = s.problems;
    if (s.certificate_der.empty()) {
        w.trusted = w.registered = false;
        w.problems.emplace_back("no certificate in KeyInfo");
        return;
    }
    const auto& trust = in_force.trust;
    if (!trust || !year) {
        w.trusted = w.registered = false;
        w.problems.emplace_back(!trust
                                    ? "untrusted_certificate: no trust anchors configured"
                                    : "not_registered: the signature's year is not in the record");
        return;
    }
    const policies::Registry registry(*services.store, trust);
    std::optional<std::string_view> subject;
    if (s.subject) subject = *s.subject;
    const auto a = registry.assess(
        policies::SigningRequest::from(*year, record, s.role, subject, s.certificate_der), at);
    w.trusted = a.trusted;
    w.registered = a.registered;
    w.problems.insert(w.problems.end(), a.problems.begin(), a.problems.end());
}

}  // namespace hbsd::daemon
