// Verify: the full report of a record (dsig/ checks cryptography, profile and order; the daemon
// adds trust and registration).
#include "daemon/handlers.hpp"
#include "daemon/handlers_common.hpp"

namespace hbsd::daemon::handlers {
namespace json = boost::json;

json::object verify(Services& s, Request& r) {
    const std::string document = r.params.string("document");
    r.params.finish();
    const auto& limits = s.config.limits;
    const auto doc = dsig::Document::parse(
        document, dsig::Limits{limits.max_document_bytes, static_cast<int>(limits.max_depth)});
    const auto& report = doc.report();

    protocol::VerifyResult out;
    out.record = report.record;
    for (const auto& y : report.years)
        out.years.push_back({y.year, y.school, y.class_name,
                             y.stage ? std::string(dsig::to_string(*y.stage)) : "none",
                             y.missing_subjects});
    // Trust is judged now: the audit log that would date hbsd's own signatures comes with
    // store/ (DESIGN.md, "Policies").
    const auto now = std::chrono::system_clock::now();
    bool untrusted = false;
    for (const auto& sig : report.signatures) {
        out.signatures.push_back(to_wire(sig, s, now));
        untrusted = untrusted || !out.signatures.back().trusted;
    }
    // Registration is not part of the verdict until the registry exists; trust is.
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
