#include "daemon/handlers_common.hpp"

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

protocol::SignatureInfo to_wire(const dsig::SignatureReport& s, const Services& services,
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
    } else if (auto why = trust_problem(services, s.certificate_der, trust_time)) {
        w.problems.push_back(std::move(*why));
    } else {
        w.trusted = true;
    }
    w.registered = false;
    w.problems.emplace_back(kNoRegistry);
    return w;
}

}  // namespace hbsd::daemon
