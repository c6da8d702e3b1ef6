// Verify: the full report of a record (dsig/ checks cryptography, profile and order; the daemon
// adds trust and registration).
#include "daemon/handlers.hpp"
#include "daemon/handlers_common.hpp"

namespace hbsd::daemon::handlers {
namespace json = boost::json;

json::object verify(Services& s, Request& r) {
    const std::string document = r.params.string("document");
    r.params.finish();
    const auto& limits = r.config->limits;
    const auto doc = dsig::Document::parse(
        document, dsig::Limits{limits.max_document_bytes, static_cast<int>(limits.max_depth)});
    const auto& report = doc.report();

    protocol::VerifyResult out;
    out.record = report.record;
    for (const auto& y : report.years)
        out.years.push_back({y.year, y.school, y.class_name,
                             y.stage ? std::string(dsig::to_string(*y.stage)) : "none",
                             y.missing_subjects});
    // Trust is judged at the time hbsd's audit log recorded for a signature it made (found by
    // the hash of its SignatureValue), else now (DESIGN.md, "Policies"): records outlive their
    // signers' certificates.
    const auto now = std::chrono::system_clock::now();
    bool untrusted = false;
    for (const auto& sig : report.signatures) {
        auto at = now;
        if (s.store && !sig.signature_value_sha256.empty())
            if (auto made = s.store->find_signature(sig.signature_value_sha256))
                if (auto t = parse_rfc3339(made->time)) at = *t;
        const dsig::YearReport* year = nullptr;
        for (const auto& y : report.years)
            if (y.year == sig.year) year = &y;
        out.signatures.push_back(to_wire(sig, r.trust, at));
        judge_registry(out.signatures.back(), sig, year, report.record, s, {r.config, r.trust}, at);
        const auto& w = out.signatures.back();
        // Registration counts only where the registry is in force, as for Sign.
        untrusted =
            untrusted || !w.trusted || (s.store && r.config->registry_checks && !w.registered);
    }
    switch (report.verdict()) {
        case dsig::Report::Verdict::valid:
            out.verdict = untrusted ? "invalid" : "valid";
            break;
        case dsig::Report::Verdict::incomplete:
            out.verdict = untrusted ? "invalid" : "incomplete";
            break;
        case dsig::Report::Verdict::invalid:
            out.verdict = "invalid";
            break;
    }
    return protocol::to_object(out);
}

}  // namespace hbsd::daemon::handlers
