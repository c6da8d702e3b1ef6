// Bounds the PKCS#11 work running at once on one token.
//
// What libp11 0.4.12 does (its p11_slot.c, and Debian 12's build of it watched through
// tests/support/pkcs11-fault on SoftHSM2): every slot owns a FIFO pool of sessions, opened lazily
// with C_OpenSession (read-only, serial) up to a fixed 16 per slot, with no public API to size it;
// a thread that finds the pool empty and the limit reached waits on a condition variable until
// another operation returns a session. It is thread-safe, and signatures on one slot do run in
// parallel (the tests see several C_Sign in flight). Its hazards:
//  - if C_OpenSession fails (token removed, CKR_SESSION_COUNT with no session out, device
//    error) the caller waits on that condition variable for ever (fixed upstream in 2025,
//    OpenSC/libp11 PR #579, not in 0.4.12);
//  - pooled sessions are never checked again (no C_GetSessionInfo), so after a removal the
//    pool hands out dead handles; and a session on which libp11 gave up after C_SignInit
//    goes back to the pool with the operation still active (CKR_OPERATION_ACTIVE for ever).
// So hsm/ wraps the pool rather than duplicating it: a SessionPool admits at most `limit`
// (<= 16, <= the token's ulMaxSessionCount - 1, one being the login session) concurrent
// libp11 operations per token, so libp11 never has to wait for a session and never opens
// more than that; it counts the sessions libp11 holds, and whenever an operation might make
// libp11 open another one, TokenState::admit first opens (and closes) one itself, turning a
// failure into an error instead of a thread lost for ever; the token's presence is checked
// (C_GetSlotInfo, C_GetTokenInfo, C_GetSessionInfo on the login session) before each
// operation; a token whose sessions died is marked gone and gets fresh PKCS11_SLOTs, with
// empty pools, when the slots are re-enumerated; and a pool left with an active operation is
// emptied (TokenState::reset_libp11_sessions). What remains is a race: C_OpenSession failing
// inside libp11 right after our probe succeeded (a removal in those microseconds); a libp11
// with PR #579 closes it.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
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

        // More operations run now than libp11 is known to hold sessions for: libp11 may
        // call C_OpenSession for this one, which it must not do if that fails (it would wait
        // for ever), so the caller probes with a session of its own first.
        bool needs_probe() const noexcept { return needs_probe_; }
        // The probe succeeded: libp11 holds (or will open) sessions for this many operations.
        void probed() noexcept;

      private:
        friend class SessionPool;
        Lease(SessionPool* pool, unsigned level, bool needs_probe) noexcept
            : pool_(pool), level_(level), needs_probe_(needs_probe) {}
        SessionPool* pool_ = nullptr;
        unsigned level_ = 0;
        bool needs_probe_ = false;
    };

    // Waits up to `wait` for a free place; Error::busy when none frees up in time.
    // `generation` changes whenever libp11's pool for the slot was emptied (its sessions
    // forgotten), which sets the count of sessions libp11 holds back to zero.
    Lease acquire(std::uint64_t generation = 0,
                  std::chrono::milliseconds wait = std::chrono::seconds(30));

    unsigned limit() const noexcept { return limit_; }
    unsigned in_use() const;
    // The most operations that ran at once since construction (for tests and status).
    unsigned peak() const;

  private:
    void release() noexcept;
    void mark_opened(unsigned level) noexcept;

    const unsigned limit_;
    mutable std::mutex mutex_;
    std::condition_variable freed_;
    unsigned in_use_ = 0;
    unsigned peak_ = 0;
    unsigned opened_ = 0;  // sessions libp11 holds for this slot, as far as we know
    std::uint64_t generation_ = 0;
};

}  // namespace hbsd::hsm
