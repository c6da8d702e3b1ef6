// Everything a handler may use, built once at start-up and shared by all worker threads.
// Members are either immutable after start-up or synchronise themselves. The configuration
// and the trust anchors are the exception: a reload (SIGHUP) replaces them as one Snapshot, and
// each call works with the snapshot it took when it started.
#pragma once

#include "daemon/config.hpp"
#include "daemon/event_hook.hpp"
#include "daemon/events.hpp"
#include "daemon/idempotency.hpp"
#include "daemon/pin_cache.hpp"
#include "daemon/sessions.hpp"
#include "hsm/token_manager.hpp"
#include "policies/trust.hpp"
#include "store/store.hpp"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace hbsd::daemon {

// What a reload replaces, together: a call takes one and keeps it to its end.
struct Snapshot {
    std::shared_ptr<const Config> config;               // never null
    std::shared_ptr<const policies::TrustStore> trust;  // null: no anchors, nothing trusted
};

struct Services {
    // `trust_store` may be null: no anchors configured, nothing is trusted.
    Services(Config cfg, std::unique_ptr<hsm::TokenManager> token_manager,
             std::shared_ptr<const policies::TrustStore> trust_store)
        : tokens(std::move(token_manager)),
          idempotency(std::make_unique<MemoryIdempotencyStore>(cfg.limits.idempotency_entries)),
          pin_cache(cfg.pin_cache),
          now_{std::make_shared<const Config>(std::move(cfg)), std::move(trust_store)} {
        // WatchEvents delivers what is published through the hook.
        on_event = [this](const Event& e) { events.publish(e); };
        // Sessions that end by themselves (ttl, max_signatures, token gone) are events.
        sessions.on_end([this](const std::string& token, std::string_view reason) {
            publish({"session_expired", token, std::nullopt, std::nullopt, std::string(reason)});
        });
    }

    // Before `sessions`, whose end hook publishes here.
    EventBus events;
    std::unique_ptr<hsm::TokenManager> tokens;
    SessionTable sessions;
    // Stands in for the store only where there is none (the fuzz target): with a store,
    // request ids live in its idempotency table, written with the signature.
    std::unique_ptr<IdempotencyStore> idempotency;
    // PINs remembered for OpenSession with an empty PIN ([pin_cache]; pin_cache.hpp). Fixed at
    // start-up: a reload does not change it.
    PinCache pin_cache;
    // The registry, records, idempotency, archive and audit log (state_dir/hbsd.db). Set once
    // before serving; null only in harnesses that run without a state directory.
    std::unique_ptr<store::Store> store;
    // Where committed changes are announced (WatchEvents subscribes here); may be empty.
    EventHook on_event;
    RequestGate requests;
    std::atomic<std::int64_t> signatures{0};
    // Numbers the signatures made by this process when there is no store (fuzz target only).
    std::atomic<std::int64_t> audit_seq{0};
    const std::chrono::steady_clock::time_point started = std::chrono::steady_clock::now();
    // Tokens present at the last look (Status, ListTokens, housekeeping): read by the D-Bus
    // status object, which must never ask a token itself.
    std::atomic<std::uint32_t> tokens_present{0};
    // The PC/SC readers as pcscd shows them now; set by TokenWatch before serving when
    // [[token_mapping]] is configured, else empty.
    std::function<std::vector<hsm::pcsc::ReaderState>()> pcsc_readers;
    // Presence of each token URI at the last look, to turn changes into token_inserted /
    // token_removed events (see note_tokens).
    std::mutex presence_mu;
    std::map<std::string, bool> presence;  // guarded by presence_mu
    // hsm::TokenInfo::incarnation of each present token URI at the last look: a token that
    // left and came back between two looks (a restarted HSM) has a new one.
    std::map<std::string, std::uint64_t> incarnations;  // guarded by presence_mu
    bool presence_seeded = false;                       // guarded by presence_mu

    // The configuration and trust anchors in force. A reload (SIGHUP) swaps them while calls
    // keep the snapshot they started with; settings that need a restart (socket, state_dir,
    // modules, worker_threads, ...) keep their start-up values in every snapshot (reload.hpp).
    Snapshot snapshot() const {
        std::lock_guard lock(now_mu_);
        return now_;
    }
    std::shared_ptr<const Config> config() const { return snapshot().config; }
    std::shared_ptr<const policies::TrustStore> trust() const { return snapshot().trust; }
    void replace(Snapshot next) {
        std::lock_guard lock(now_mu_);
        now_ = std::move(next);
    }

    void publish(const Event& e) const noexcept {
        if (!on_event) return;
        try {
            on_event(e);
        } catch (...) {
            // An event lost is not a signature lost: the audit log already holds the change.
        }
    }

  private:
    // Held only to copy or swap two pointers: never while anything slow runs.
    mutable std::mutex now_mu_;
    Snapshot now_;
};

// The trust anchors and CRLs of the configuration; null when none are configured. Throws
// hbsd::Error (Internal) naming a file that cannot be read.
std::shared_ptr<const policies::TrustStore> load_trust(const Config& config);

// nullopt when the certificate chains to a configured anchor at `at`; else why not, in words.
std::optional<std::string> trust_problem(const std::shared_ptr<const policies::TrustStore>& trust,
                                         std::span<const unsigned char> certificate_der,
                                         std::chrono::system_clock::time_point at);

// Periodic, on a worker thread: ends sessions past their ttl and sessions whose token has gone
// (so that a removed card ends its session even when no one signs with it); `look_at_tokens`
// says whether to re-read the slots this round (always, while sessions are open).
void housekeeping(Services& services, bool look_at_tokens);
// The tokens as ListTokens shows them: the modules' view with the [[token_mapping]] applied
// (apply_token_mapping), already passed through note_tokens.
std::vector<hsm::TokenInfo> current_tokens(Services& services);
// Records which tokens are present (for the status counters) and ends the sessions of those
// that are not.
void note_tokens(Services& services, const std::vector<hsm::TokenInfo>& tokens);

// The interface text of vn.hocbaso.Signer, embedded at build time from the .varlink file.
std::string_view signer_interface_description() noexcept;
// org.varlink.service, as every Varlink service describes it.
std::string_view varlink_service_description() noexcept;
// vn.hocbaso.SignerAdmin (handlers_audit.cpp).
std::string_view signer_admin_interface_description() noexcept;

}  // namespace hbsd::daemon
