// Everything a handler may use, built once at start-up and shared by all worker threads.
// Members are either immutable after start-up or synchronise themselves.
#pragma once

#include "daemon/config.hpp"
#include "daemon/idempotency.hpp"
#include "daemon/sessions.hpp"
#include "hsm/token_manager.hpp"
#include "policies/trust.hpp"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace hbsd::daemon {

struct Services {
    // `trust_store` may be null: no anchors configured, nothing is trusted.
    Services(Config cfg, std::unique_ptr<hsm::TokenManager> token_manager,
             std::shared_ptr<const policies::TrustStore> trust_store)
        : config(std::move(cfg)),
          tokens(std::move(token_manager)),
          idempotency(std::make_unique<MemoryIdempotencyStore>(config.limits.idempotency_entries)),
          trust_(std::move(trust_store)) {}

    const Config config;
    std::unique_ptr<hsm::TokenManager> tokens;
    SessionTable sessions;
    std::unique_ptr<IdempotencyStore> idempotency;
    RequestGate requests;
    std::atomic<std::int64_t> signatures{0};
    // Stands in for the audit log's sequence until store/ exists: numbers the signatures made
    // by this process, starting at 1.
    std::atomic<std::int64_t> audit_seq{0};
    const std::chrono::steady_clock::time_point started = std::chrono::steady_clock::now();
    // Tokens present at the last look (Status, ListTokens, housekeeping): read by the D-Bus
    // status object, which must never ask a token itself.
    std::atomic<std::uint32_t> tokens_present{0};

    // The trust anchors in force; a reload (SIGHUP) swaps them while calls keep the set they
    // started with.
    std::shared_ptr<const policies::TrustStore> trust() const {
        std::lock_guard lock(trust_mu_);
        return trust_;
    }
    void set_trust(std::shared_ptr<const policies::TrustStore> trust) {
        std::lock_guard lock(trust_mu_);
        trust_ = std::move(trust);
    }

  private:
    mutable std::mutex trust_mu_;
    std::shared_ptr<const policies::TrustStore> trust_;
};

// The trust anchors and CRLs of the configuration; null when none are configured. Throws
// hbsd::Error (Internal) naming a file that cannot be read.
std::shared_ptr<const policies::TrustStore> load_trust(const Config& config);

// nullopt when the certificate chains to a configured anchor at `at`; else why not, in words.
std::optional<std::string> trust_problem(const Services& services,
                                         std::span<const unsigned char> certificate_der,
                                         std::chrono::system_clock::time_point at);

// Periodic, on a worker thread: ends sessions past their ttl and sessions whose token has gone
// (so that a removed card ends its session even when no one signs with it); `look_at_tokens`
// says whether to re-read the slots this round (always, while sessions are open).
void housekeeping(Services& services, bool look_at_tokens);
// Records which tokens are present (for the status counters) and ends the sessions of those
// that are not.
void note_tokens(Services& services, const std::vector<hsm::TokenInfo>& tokens);

// The interface text of vn.hocbaso.Signer, embedded at build time from the .varlink file.
std::string_view signer_interface_description() noexcept;
// org.varlink.service, as every Varlink service describes it.
std::string_view varlink_service_description() noexcept;

}  // namespace hbsd::daemon
