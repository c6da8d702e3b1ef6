// The daemon's side of the audit log (DESIGN.md, "Storage, audit, nothing lost"): every call
// that changes state or signs, and every refusal, becomes one hash-chained store entry and one
// structured log entry. Documents appear only as hashes; PINs and keys never.
#pragma once

#include "daemon/auth.hpp"
#include "daemon/dispatch.hpp"
#include "daemon/services.hpp"
#include "protocol/error.hpp"
#include "store/audit.hpp"

#include <cstdint>
#include <string>
#include <string_view>

namespace hbsd::daemon {

// Appends the entry (store errors propagate: a change that cannot be audited is reported) and
// logs it. Returns its seq; 0 when there is no store.
std::int64_t audit(const Services& services, const store::AuditInput& entry);

// The journal copy of an entry the store already holds (commit_signature writes its own).
void log_audit(std::int64_t seq, const store::AuditInput& entry) noexcept;

// A refused or failed call: outcome denied for PermissionDenied and PolicyViolation, failed for
// anything else; the detail is base's detail (what the request said: "subject TOAN", "item 3"),
// then the error's name and parameters. `base` carries what is known (record, role,
// fingerprint, document hash). Never throws: the refusal itself is what the
// caller must get, and a store that cannot write is logged.
void audit_refusal(const Services& services, std::int64_t uid, std::string_view method,
                   const Error& refusal, store::AuditInput base = {}) noexcept;

// For the Dispatcher: refusals made before a handler runs (PermissionDenied).
Dispatcher::RefusalHook audit_refusals(const Services& services);

}  // namespace hbsd::daemon
