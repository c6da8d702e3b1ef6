// The PIN cache ([pin_cache] in hbsd.toml), modelled on gpg-agent's passphrase cache: after a
// successful OpenSession with a PIN, the PIN is remembered for a while so that the same person
// can open the next session on the same card with an empty PIN.
//
// What an entry is bound to, and why:
//  - the caller's uid: a PIN is one person's consent and is never lent to another uid;
//  - the token's canonical URI and serial number: the card the PIN was typed for;
//  - the token's incarnation (hsm::TokenInfo::incarnation) and, for a card in a PC/SC reader,
//    the reader: a card taken out and put back (or an HSM that restarted) is a new
//    incarnation, and the person must type the PIN again, as the issue demands.
// An entry goes on: card removal / token gone (note_tokens, TokenWatch, TokenNotPresent), a
// PinIncorrect or PinLocked when it is used, its ttl (counted from when the PIN was typed, never
// extended by use), an explicit ForgetPins, and shutdown. CloseSession keeps it, as closing a
// gpg-agent connection keeps the passphrase.
//
// The PIN bytes live only in one mlock'ed (where RLIMIT_MEMLOCK allows), MADV_DONTDUMP mapping
// of max_entries fixed-size slots, wiped (OPENSSL_cleanse) whenever an entry goes and when the
// cache is destroyed. A PIN is never logged, never in an event, the audit log or Status.
#pragma once

#include "daemon/config.hpp"

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace hbsd::daemon {

// Anonymous pages for secrets: locked in RAM where the process may lock memory (so the PIN is
// never written to swap), left out of core dumps, wiped before they are unmapped. Owns the
// mapping (munmap); move-only.
class LockedPages {
  public:
    // Error::internal when the pages cannot be mapped; failing to lock them is not fatal
    // (locked() says).
    explicit LockedPages(std::size_t bytes);
    LockedPages(LockedPages&& other) noexcept;
    LockedPages& operator=(LockedPages&& other) noexcept;
    LockedPages(const LockedPages&) = delete;
    LockedPages& operator=(const LockedPages&) = delete;
    ~LockedPages();

    std::span<unsigned char> bytes() noexcept {
        return {static_cast<unsigned char*>(addr_), size_};
    }
    bool locked() const noexcept { return locked_; }

  private:
    void release() noexcept;

    void* addr_ = nullptr;
    std::size_t size_ = 0;
    bool locked_ = false;
};

class PinCache {
  public:
    using Clock = std::chrono::steady_clock;
    // A longer PIN (PKCS#11 allows up to 1024 bytes here) is simply not cached.
    static constexpr std::size_t kMaxPinBytes = 128;

    // The token a cached PIN logged in to.
    struct Token {
        std::string uri;  // canonical (hsm::Login::token_uri)
        std::string serial;
        std::uint64_t incarnation = 0;
        std::optional<std::string> reader;
    };

    // Disabled (config.enabled false): nothing is ever remembered and no memory is locked.
    explicit PinCache(const PinCacheConfig& config);
    PinCache(const PinCache&) = delete;
    PinCache& operator=(const PinCache&) = delete;
    ~PinCache();

    bool enabled() const noexcept { return enabled_; }
    std::chrono::seconds ttl() const noexcept { return ttl_; }

    // Remembers `pin` for (uid, token.uri), replacing that pair's entry; `requested` is the URI
    // the caller named, which a later find() may use too. When full, the entry typed longest ago
    // goes. False when nothing was remembered (disabled, empty or over-long PIN).
    // `reader_events_before`: reader_events() read before the login, so that a card pulled
    // between the login and this call (whose drop_reader found nothing to drop yet) is not
    // remembered as if it had stayed.
    bool remember(uid_t uid, const Token& token, std::string_view requested, std::string_view pin,
                  std::optional<std::uint64_t> reader_events_before = std::nullopt,
                  Clock::time_point now = Clock::now());
    // The entry of `uid` for the token named `token` (its canonical URI or the URI the caller
    // named when the PIN was typed), within its ttl: the token it was typed for, and the PIN
    // copied into `pin` (which the caller must wipe; reserve kMaxPinBytes first so that no
    // reallocation leaves a copy behind). An expired entry is dropped on the way.
    std::optional<Token> find(uid_t uid, std::string_view token, std::string& pin,
                              Clock::time_point now = Clock::now());

    // Each returns the number of entries dropped.
    // `uid`'s entries (every token, or the one named `token`): the explicit drop.
    std::size_t drop(uid_t uid, std::optional<std::string_view> token = std::nullopt);
    // Every uid's entries for the token `uri` (it left).
    std::size_t drop_token(std::string_view uri);
    // Every uid's entries for `uri` typed for another incarnation than `current` (it left and
    // came back between two looks).
    std::size_t drop_other_incarnations(std::string_view uri, std::uint64_t current);
    // Entries for `uri` typed for `incarnation` (a use of that incarnation found it gone).
    std::size_t drop_incarnation(std::string_view uri, std::uint64_t incarnation);
    // Every entry whose token sat in PC/SC reader `reader` (its card was removed).
    std::size_t drop_reader(std::string_view reader);
    // How many times drop_reader was called (card or reader removals seen by TokenWatch).
    std::uint64_t reader_events() const noexcept { return reader_events_.load(); }
    // Whether `uid` still has an entry for `uri` typed for `incarnation` (not dropped since a
    // find: a login with a cached PIN checks this before the session opens).
    bool holds(uid_t uid, std::string_view uri, std::uint64_t incarnation);
    // Entries past their ttl.
    std::size_t sweep(Clock::time_point now = Clock::now());
    void clear();
    std::size_t size();

  private:
    struct Entry {
        uid_t uid;
        Token token;
        std::string requested;
        Clock::time_point typed;
        std::size_t slot;
        std::size_t length;
    };

    template <class Pred>
    std::size_t drop_if(Pred pred);
    // Wipes the entry's slot and frees it; caller holds mu_.
    void forget(std::vector<Entry>::iterator it) noexcept;

    const bool enabled_;
    const std::chrono::seconds ttl_;
    const std::size_t max_entries_;
    std::mutex mu_;
    std::optional<LockedPages> slots_;  // max_entries_ * kMaxPinBytes; guarded by mu_
    std::vector<Entry> entries_;        // guarded by mu_
    std::vector<std::size_t> free_;     // free slot indexes; guarded by mu_
    std::atomic<std::uint64_t> reader_events_{0};
};

}  // namespace hbsd::daemon
