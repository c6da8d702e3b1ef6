// Bounds the PKCS#11 work running at once on one token.
//
// What libp11 0.4.12 does (read from its p11_slot.c and checked against SoftHSM2 through
// tests/support/pkcs11-fault): every slot owns a FIFO pool of sessions, opened lazily with
// C_OpenSession (read-only, serial) up to a fixed 16 per slot, with no public API to size
// it; a thread that finds the pool empty and the limit reached waits on a condition variable
// until another operation returns a session. Two hazards follow:
//  - if C_OpenSession fails (token removed, CKR_SESSION_COUNT with no session out, device
//    error) the caller waits on that condition variable for ever (fixed upstream in 2025,
//    OpenSC/libp11 PR #579, not in 0.4.12);
//  - pooled sessions are never checked again (no C_GetSessionInfo), so after a removal the
//    pool hands out dead handles until PKCS11_open_session() resets it.
// So hsm/ wraps the pool rather than duplicating it: a SessionPool admits at most `limit`
// (<= 16, <= the token's ulMaxSessionCount - 1 for the login session) concurrent operations,
// so libp11 never has to wait for a session and never opens more than that; the token's
// presence is checked (C_GetSlotInfo, which never blocks on the pool) right before each
// operation that may open a session; and a token whose sessions died is marked gone, its pool
// reset when the slot is re-enumerated. The remaining window (removal between that check and
// libp11's C_OpenSession) is microseconds wide; upgrading libp11 closes it.
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>

namespace hbsd::hsm {

class SessionPool {
  public:
    static constexpr unsigned libp11_max_sessions = 16;

    explicit SessionPool(unsigned limit);
    SessionPool(const SessionPool&) = delete;
    SessionPool& operator=(const SessionPool&) = delete;

    // One admitted operation; returns its place on destruction.
    class Lease {
      public:
        Lease() noexcept = default;
        Lease(Lease&& other) noexcept;
        Lease& operator=(Lease&& other) noexcept;
        Lease(const Lease&) = delete;
        Lease& operator=(const Lease&) = delete;
        ~Lease();

      private:
        friend class SessionPool;
        explicit Lease(SessionPool* pool) noexcept : pool_(pool) {}
        SessionPool* pool_ = nullptr;
    };

    // Waits up to `wait` for a free place; Error::busy when none frees up in time.
    Lease acquire(std::chrono::milliseconds wait = std::chrono::seconds(30));

    unsigned limit() const noexcept { return limit_; }
    unsigned in_use() const;
    // The most operations that ran at once since construction (for tests and status).
    unsigned peak() const;

  private:
    void release() noexcept;

    const unsigned limit_;
    mutable std::mutex mutex_;
    std::condition_variable freed_;
    unsigned in_use_ = 0;
    unsigned peak_ = 0;
};

}  // namespace hbsd::hsm
