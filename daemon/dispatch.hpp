// The dispatch table: every method of the contract, the capability it needs and its handler.
// A call is routed and refused (MethodNotFound, InterfaceNotFound, PermissionDenied,
// ExpectedMore) here, before its handler runs, as OpenSSH's monitor does.
#pragma once

#include "daemon/auth.hpp"
#include "daemon/capability.hpp"
#include "daemon/services.hpp"
#include "protocol/codec.hpp"
#include "protocol/error.hpp"

#include <boost/json/object.hpp>
#include <functional>
#include <memory>
#include <span>
#include <string_view>

namespace hbsd::daemon {

struct Request {
    const Caller& caller;
    // Owned by the connection for the duration of the call; handlers may wipe secrets in it.
    protocol::Call& call;
    protocol::Params params;
    // For calls with "more": sends one reply with "continues": true; the handler's return
    // value is the last reply. Empty (and not to be called) when the call has no "more".
    std::function<void(boost::json::object)> stream;
    // The configuration and trust anchors in force when the call started (Services::snapshot):
    // a reload meanwhile does not change the rules under a running call.
    std::shared_ptr<const Config> config;
    std::shared_ptr<const policies::TrustStore> trust;
};

using Handler = boost::json::object (*)(Services&, Request&);

// Where a handler runs: trivial ones on the I/O thread; anything that may block (PKCS#11,
// XML, locks held by those) on the worker pool, and counted against max_inflight.
enum class Runs { io_thread, worker_pool };

// `pending`: the method is in the contract and routed (capability checked), but its handler
// arrives with a later issue and answers MethodNotFound until then.
enum class Availability { ready, pending };

struct MethodEntry {
    std::string_view interface;
    std::string_view name;
    Capability needs;
    Handler handler;
    Runs runs;
    Availability availability = Availability::ready;
    bool requires_more = false;  // WatchEvents: a call without "more" gets ExpectedMore
};

inline constexpr std::string_view kSignerInterface = "vn.hocbaso.Signer";
inline constexpr std::string_view kServiceInterface = "org.varlink.service";
// hbsd's extension (GetArchived), kept out of the fixed contract.
inline constexpr std::string_view kSignerAdminInterface = "vn.hocbaso.SignerAdmin";

class Dispatcher {
  public:
    // The one place every refusal passes through (audit comes here in a later issue).
    using RefusalHook =
        std::function<void(const Caller&, std::string_view method, const Error& refusal)>;

    explicit Dispatcher(RefusalHook on_refusal = {}) : on_refusal_(std::move(on_refusal)) {}

    // The entry for the call, after checking the caller may make it. Throws the refusal.
    const MethodEntry& route(const Caller& caller, const protocol::Call& call) const;
    // Runs the handler; any exception other than hbsd::Error becomes Error::internal (the
    // cause goes to the log only). PermissionDenied raised inside (e.g. another uid's session)
    // passes the refusal hook too.
    boost::json::object invoke(const MethodEntry& entry, Services& services,
                               Request& request) const;

    static std::span<const MethodEntry> table() noexcept;
    static const MethodEntry* find(std::string_view qualified_method) noexcept;

  private:
    void refused(const Caller& caller, std::string_view method, const Error& e) const;
    RefusalHook on_refusal_;
};

}  // namespace hbsd::daemon
