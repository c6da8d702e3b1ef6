#include "daemon/dispatch.hpp"

#include "daemon/handlers.hpp"
#include "daemon/log.hpp"

#include <array>

namespace hbsd::daemon {
namespace {

using enum Capability;
constexpr auto S = kSignerInterface;
constexpr auto V = kServiceInterface;
constexpr auto A = kSignerAdminInterface;
constexpr auto io = Runs::io_thread;
constexpr auto pool = Runs::worker_pool;
constexpr auto later = Availability::pending;
constexpr auto ready = Availability::ready;

// Capabilities as the contract's header states them. The org.varlink.service methods only
// describe the interface, so anyone allowed to connect to the socket may call them.
constexpr std::array kTable{
    MethodEntry{V, "GetInfo", none, handlers::get_info, io},
    MethodEntry{V, "GetInterfaceDescription", none, handlers::get_interface_description, io},

    MethodEntry{S, "Status", read, handlers::status, pool},
    MethodEntry{S, "ListTokens", read, handlers::list_tokens, pool},
    MethodEntry{S, "ListKeys", read, handlers::list_keys, pool},
    MethodEntry{S, "OpenSession", sign, handlers::open_session, pool},
    MethodEntry{S, "CloseSession", sign, handlers::close_session, pool},
    MethodEntry{S, "Sign", sign, handlers::sign, pool},
    MethodEntry{S, "SignBatch", sign, handlers::sign_batch, pool},
    MethodEntry{S, "Verify", read, handlers::verify, pool},

    // Administration (registry, assignments, locks).
    MethodEntry{S, "RegisterCertificate", admin, handlers::register_certificate, pool},
    MethodEntry{S, "ApproveCertificate", admin, handlers::approve_certificate, pool},
    MethodEntry{S, "RevokeCertificate", admin, handlers::revoke_certificate, pool},
    MethodEntry{S, "ListCertificates", admin, handlers::list_certificates, pool},
    MethodEntry{S, "AssignRole", admin, handlers::assign_role, pool},
    MethodEntry{S, "UnassignRole", admin, handlers::unassign_role, pool},
    MethodEntry{S, "ListAssignments", admin, handlers::list_assignments, pool},
    MethodEntry{S, "SetYearLock", admin, handlers::set_year_lock, pool},
    // Records.
    MethodEntry{S, "GetRecord", read, handlers::get_record, pool},
    MethodEntry{S, "RequestRevocation", admin, handlers::request_revocation, pool},
    MethodEntry{S, "DecideRevocation", admin, handlers::decide_revocation, pool},
    MethodEntry{S, "TransferRecord", admin, handlers::transfer_record, pool},
    // Events and audit.
    // Streamed by the connection on the I/O thread, so watchers never take a worker.
    MethodEntry{S, "WatchEvents", read, handlers::watch_events, io, ready, true},
    MethodEntry{S, "GetAuditLog", admin, handlers::get_audit_log, pool},
    MethodEntry{S, "VerifyAuditLog", admin, handlers::verify_audit_log, pool},

    // hbsd's own extension interface (the contract above is fixed).
    MethodEntry{A, "GetArchived", admin, handlers::get_archived, pool},
    // A caller forgets its own cached PINs: whoever may open a session may.
    MethodEntry{A, "ForgetPins", sign, handlers::forget_pins, pool},
};
static_assert(ready != later);

}  // namespace

std::span<const MethodEntry> Dispatcher::table() noexcept {
    return kTable;
}

const MethodEntry* Dispatcher::find(std::string_view qualified) noexcept {
    const auto [iface, name] = protocol::split_method(qualified);
    for (const auto& e : kTable)
        if (e.interface == iface && e.name == name) return &e;
    return nullptr;
}

void Dispatcher::refused(const Caller& caller, std::string_view method, const Error& e) const {
    log::info("refused uid=%u pid=%d method=%.*s: %s", caller.uid, caller.pid,
              static_cast<int>(method.size()), method.data(), e.what());
    if (on_refusal_) on_refusal_(caller, method, e);
}

const MethodEntry& Dispatcher::route(const Caller& caller, const protocol::Call& call) const {
    const auto* entry = find(call.method);
    if (!entry) {
        const auto iface = protocol::split_method(call.method).first;
        if (iface != kSignerInterface && iface != kServiceInterface &&
            iface != kSignerAdminInterface)
            throw Error(Errc::InterfaceNotFound, {{"interface", iface}});
        throw Error::method_not_found(call.method);
    }
    if (!allows(caller.capabilities, entry->needs)) {
        auto e = Error::permission_denied(caller.uid, call.method);
        refused(caller, call.method, e);
        throw e;
    }
    // The contract's rule for WatchEvents holds even before its handler exists.
    if (entry->requires_more && !call.more) throw Error(Errc::ExpectedMore, {});
    if (entry->availability == Availability::pending) throw Error::method_not_found(call.method);
    return *entry;
}

boost::json::object Dispatcher::invoke(const MethodEntry& entry, Services& services,
                                       Request& request) const {
    try {
        return entry.handler(services, request);
    } catch (const Error& e) {
        if (e.code() == Errc::PermissionDenied)
            refused(request.caller, request.call.method, e);
        else if (e.code() == Errc::Internal)
            log::error("%s: %s", request.call.method.c_str(), e.what());
        throw;
    } catch (const std::exception& e) {
        auto internal = Error::internal(e.what());
        log::error("%s: %s", request.call.method.c_str(), internal.what());
        throw internal;
    }
}

}  // namespace hbsd::daemon
