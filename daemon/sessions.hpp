// Signing sessions: a Login (a PIN presented once) bound to the uid that presented it.
//
// A session ends at its ttl, after max_signatures signatures, on CloseSession or when its token
// disappears. An ended session leaves a tombstone for a while, so that a late Sign hears
// SessionExpired rather than SessionNotFound. Ending a session drops its Login; the token is
// logged out once signatures already running with it have finished.
#pragma once

#include "hsm/token_manager.hpp"

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>

namespace hbsd::daemon {

class SessionTable {
  public:
    using Clock = std::chrono::steady_clock;

    struct Opened {
        std::string id;
        std::chrono::system_clock::time_point expires_at;
    };

    // What a signature needs from its session; holding it keeps the token logged in.
    struct Lease {
        std::string session;
        std::string token_uri;
        std::shared_ptr<const hsm::Login> login;
    };

    // A reserved signature: counted against max_signatures now, given back on destruction
    // unless commit() says the signature was made.
    class Ticket {
      public:
        Ticket(SessionTable& table, Lease lease) : table_(&table), lease_(std::move(lease)) {}
        Ticket(Ticket&& o) noexcept
            : table_(std::exchange(o.table_, nullptr)), lease_(std::move(o.lease_)) {}
        Ticket& operator=(Ticket&&) = delete;
        Ticket(const Ticket&) = delete;
        ~Ticket();
        const Lease& lease() const noexcept { return lease_; }
        void commit() noexcept;

      private:
        SessionTable* table_;
        Lease lease_;
    };

    explicit SessionTable(std::size_t max_tombstones = 4096) : max_tombstones_(max_tombstones) {}

    // Told (under the table's lock: must not call back into the table, must not block) when a
    // session ends by itself: reason "ttl", "max_signatures" or "token_removed". CloseSession is
    // not reported here; its handler knows. Set once, before the server starts.
    using EndHook = std::function<void(const std::string& token_uri, std::string_view reason)>;
    void on_end(EndHook hook) { on_end_ = std::move(hook); }

    Opened open(uid_t uid, hsm::Login login, std::chrono::seconds ttl,
                std::optional<std::int64_t> max_signatures);
    // SessionNotFound, SessionExpired, or PermissionDenied{uid, method} for another uid's session;
    // TokenNotPresent when the session ended because its token went away: a signature (a batch
    // item) that can no longer be made for that reason says so, while the session's next call
    // (lease) hears SessionExpired.
    Ticket reserve_signature(uid_t uid, std::string_view session, std::string_view method);
    // Same checks without reserving.
    Lease lease(uid_t uid, std::string_view session, std::string_view method);
    void close(uid_t uid, std::string_view session, std::string_view method);
    // The token went away (or reported itself absent): its sessions end, except those logged
    // in to incarnation `keep` (hsm::TokenInfo::incarnation) of it, i.e. to the token that
    // is there now.
    void end_token(std::string_view token_uri, std::optional<std::uint64_t> keep = std::nullopt);
    // Ends sessions whose ttl passed; called periodically so that logins do not outlive it.
    void sweep();
    std::size_t active();
    // The number of sessions at the last change, without locking or sweeping (for status
    // readers that must not block or log a token out).
    std::size_t count_hint() const noexcept { return count_.load(std::memory_order_relaxed); }

  private:
    struct Session {
        uid_t uid;
        std::string token_uri;
        std::shared_ptr<const hsm::Login> login;
        Clock::time_point expires;
        std::optional<std::int64_t> max_signatures;
        std::int64_t reserved = 0;   // in flight
        std::int64_t completed = 0;  // made
    };

    Session& live(std::unique_lock<std::mutex>& lock, uid_t uid, std::string_view id,
                  std::string_view method, bool for_signature = false);
    void end(std::unordered_map<std::string, Session>::iterator it, std::string_view reason);
    void unreserve(const std::string& id, bool committed) noexcept;
    void sweep_locked(Clock::time_point now);

    std::mutex mu_;
    std::unordered_map<std::string, Session> sessions_;
    struct Tombstone {
        uid_t uid;
        std::string token_uri;
        bool token_removed = false;
    };
    std::unordered_map<std::string, Tombstone> tombstones_;  // ended (not closed)
    std::deque<std::string> tombstone_order_;
    std::size_t max_tombstones_;
    std::atomic<std::size_t> count_{0};
    EndHook on_end_;
};

// 128 random bits as lowercase hex (OpenSSL's CSPRNG).
std::string random_hex_128();

}  // namespace hbsd::daemon
