// Move-only owners of pcsc-lite's handles, one type per handle, named after it.
#pragma once

#include <winscard.h>

#include <utility>

namespace hbsd::hsm::pcsc {

// SCARDCONTEXT; released with SCardReleaseContext. A context belongs to one thread at a time,
// except for SCardCancel, which pcsc-lite allows from any thread.
class ScardContext {
  public:
    ScardContext() noexcept = default;
    ~ScardContext() { reset(); }
    ScardContext(ScardContext&& other) noexcept : handle_(std::exchange(other.handle_, 0)) {}
    ScardContext& operator=(ScardContext&& other) noexcept {
        if (this != &other) {
            reset();
            handle_ = std::exchange(other.handle_, 0);
        }
        return *this;
    }
    ScardContext(const ScardContext&) = delete;
    ScardContext& operator=(const ScardContext&) = delete;

    // SCARD_SCOPE_SYSTEM; the return value is pcsc-lite's (SCARD_E_NO_SERVICE when pcscd is
    // not running), and the object stays empty unless it is SCARD_S_SUCCESS.
    LONG establish() noexcept {
        reset();
        SCARDCONTEXT h = 0;
        const LONG rv = SCardEstablishContext(SCARD_SCOPE_SYSTEM, nullptr, nullptr, &h);
        if (rv == SCARD_S_SUCCESS) handle_ = h;
        return rv;
    }
    void reset() noexcept {
        if (handle_ != 0) (void)SCardReleaseContext(std::exchange(handle_, 0));
    }

    SCARDCONTEXT get() const noexcept { return handle_; }
    explicit operator bool() const noexcept { return handle_ != 0; }

  private:
    SCARDCONTEXT handle_ = 0;
};

// SCARDHANDLE, a connection to a card; disconnected leaving the card as it is (no reset), so
// that closing our connection never disturbs another program's session on the same card.
class ScardCard {
  public:
    ScardCard() noexcept = default;
    ~ScardCard() { reset(); }
    ScardCard(ScardCard&& other) noexcept
        : handle_(std::exchange(other.handle_, 0)), protocol_(other.protocol_) {}
    ScardCard& operator=(ScardCard&& other) noexcept {
        if (this != &other) {
            reset();
            handle_ = std::exchange(other.handle_, 0);
            protocol_ = other.protocol_;
        }
        return *this;
    }
    ScardCard(const ScardCard&) = delete;
    ScardCard& operator=(const ScardCard&) = delete;

    // Always SCARD_SHARE_SHARED: hbsd must never lock other programs out of a reader.
    LONG connect_shared(const ScardContext& context, const char* reader) noexcept {
        reset();
        SCARDHANDLE h = 0;
        DWORD protocol = 0;
        const LONG rv = SCardConnect(context.get(), reader, SCARD_SHARE_SHARED,
                                     SCARD_PROTOCOL_T0 | SCARD_PROTOCOL_T1, &h, &protocol);
        if (rv == SCARD_S_SUCCESS) {
            handle_ = h;
            protocol_ = protocol;
        }
        return rv;
    }
    void reset() noexcept {
        if (handle_ != 0) (void)SCardDisconnect(std::exchange(handle_, 0), SCARD_LEAVE_CARD);
    }

    SCARDHANDLE get() const noexcept { return handle_; }
    DWORD protocol() const noexcept { return protocol_; }
    explicit operator bool() const noexcept { return handle_ != 0; }

  private:
    SCARDHANDLE handle_ = 0;
    DWORD protocol_ = 0;
};

}  // namespace hbsd::hsm::pcsc
