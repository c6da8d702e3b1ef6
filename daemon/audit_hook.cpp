#include "daemon/audit_hook.hpp"

#include "daemon/log.hpp"
#include "daemon/log_fields.hpp"

#include <boost/json/serialize.hpp>

namespace hbsd::daemon {
namespace {

// journalctl MESSAGE_ID=... finds every entry of a kind without parsing messages.
constexpr std::string_view kIdSigned = "4f0a3c1e9b2d4e7f8a6b5c4d3e2f1a01";
constexpr std::string_view kIdChanged = "4f0a3c1e9b2d4e7f8a6b5c4d3e2f1a02";
constexpr std::string_view kIdDenied = "4f0a3c1e9b2d4e7f8a6b5c4d3e2f1a03";
constexpr std::string_view kIdFailed = "4f0a3c1e9b2d4e7f8a6b5c4d3e2f1a04";

}  // namespace

void log_audit(std::int64_t seq, const store::AuditInput& e) noexcept {
    try {
        log::Fields f{{"HBSD_SEQ", std::to_string(seq)},
                      {"HBSD_UID", std::to_string(e.uid)},
                      {"HBSD_METHOD", e.method},
                      {"HBSD_OUTCOME", std::string(store::to_string(e.outcome))}};
        auto add = [&](const char* k, const std::optional<std::string>& v) {
            if (v) f.emplace_back(k, *v);
        };
        add("HBSD_RECORD", e.record);
        add("HBSD_ROLE", e.role);
        add("HBSD_FINGERPRINT", e.fingerprint);
        add("HBSD_DOCUMENT_BEFORE", e.document_before);
        add("HBSD_DOCUMENT_AFTER", e.document_after);
        add("HBSD_DETAIL", e.detail);
        std::string_view id = kIdChanged;
        int prio = 6;
        if (e.outcome == store::Outcome::denied) {
            id = kIdDenied;
            prio = 4;
        } else if (e.outcome == store::Outcome::failed) {
            id = kIdFailed;
            prio = 4;
        } else if (e.method == "Sign" || e.method == "SignBatch") {
            id = kIdSigned;
        }
        log::structured(prio, id,
                        "audit " + std::to_string(seq) + " " + e.method + " " +
                            std::string(store::to_string(e.outcome)),
                        f);
    } catch (...) {
    }
}

std::int64_t audit(const Services& s, const store::AuditInput& entry) {
    if (!s.store) {
        log_audit(0, entry);
        return 0;
    }
    const auto seq = s.store->append_audit(entry);
    log_audit(seq, entry);
    return seq;
}

void audit_refusal(const Services& s, std::int64_t uid, std::string_view method,
                   const Error& refusal, store::AuditInput base) noexcept {
    try {
        base.uid = uid;
        base.method = std::string(method);
        const auto code = refusal.code();
        base.outcome = (code == Errc::PermissionDenied || code == Errc::PolicyViolation)
                           ? store::Outcome::denied
                           : store::Outcome::failed;
        // What the caller knew of the request ("subject TOAN", "item 3"), then the refusal.
        std::string detail = base.detail && !base.detail->empty() ? *base.detail + ": " : "";
        detail += error_name(code);
        if (!refusal.parameters().empty())
            detail += " " + boost::json::serialize(refusal.parameters());
        base.detail = std::move(detail);
        (void)audit(s, base);
    } catch (const std::exception& e) {
        log::error("audit of a refused %.*s failed: %s", static_cast<int>(method.size()),
                   method.data(), e.what());
    }
}

Dispatcher::RefusalHook audit_refusals(const Services& s) {
    return [&s](const Caller& caller, std::string_view method, const Error& refusal) {
        // The wire name minus the interface: entries read "Sign", not the qualified name.
        const auto name = protocol::split_method(method).second;
        audit_refusal(s, caller.uid, name.empty() ? method : name, refusal);
    };
}

}  // namespace hbsd::daemon
