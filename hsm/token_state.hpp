// Internal state behind TokenManager and Login (not part of the interface).
//
// Locking, always taken in this order:
//   Module::lock       shared by every use of libp11's slot/token/key structures, exclusive
//                      while PKCS11_update_slots replaces them (refresh);
//   TokenState::login  the token's login state (count, session, PIN verifier);
//   TokenState::objects  libp11's object caches of the slot and our key cache: exclusive
//                      while enumerating objects, shared while signing;
//   ManagerState::tokens_mutex is only held to copy or edit the token list, never while
//   taking one of the above.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <vector>

#include "hsm/module.hpp"
#include "hsm/openssl_handles.hpp"
#include "hsm/pin_verifier.hpp"
#include "hsm/session_pool.hpp"
#include "hsm/token_manager.hpp"

namespace hbsd::hsm::detail {

struct Module {
    explicit Module(const ModuleConfig& config);

    const std::string name;
    const std::string path;
    NoPromptUi ui;  // outlives ctx
    Pkcs11Ctx ctx;
    ModuleFunctions functions;
    CK_INFO info{};
    std::shared_mutex lock;
    Pkcs11SlotList slots;  // guarded by lock
    // Earlier slot lists, kept while some token of the module is logged in, because
    // releasing them would close every session of their slots, our login sessions included.
    std::vector<Pkcs11SlotList> retired;  // guarded by lock
    std::atomic<unsigned> logged_in_tokens{0};
    // Bumped whenever libp11's session pools of this module's slots are emptied.
    std::atomic<std::uint64_t> session_generation{0};
    // Earliest steady_clock time (ns since epoch) of the next re-initialisation attempt, so
    // that a module that stays broken is not finalised over and over (token_manager.cpp).
    std::atomic<std::int64_t> next_reinit_ns{0};

    // Releases the retired lists once no token of the module is logged in, then empties the
    // session pools of the current slots, whose sessions that release just closed. Caller
    // holds lock exclusively.
    void release_retired() noexcept;
};

struct PrivateKey {
    std::vector<unsigned char> id;
    std::string label;
    std::string uri;
    EvpPkey key;  // libp11's EVP_PKEY; signs through the token
    KeyAlgorithm algorithm = KeyAlgorithm::rsa;
    int bits = 0;
    // CKA_ALWAYS_AUTHENTICATE: a context-specific login before each signature, which this
    // interface (one PIN per Login) cannot give.
    bool always_authenticate = false;
};

struct TokenState {
    TokenState(std::shared_ptr<Module> module, CK_SLOT_ID slot_id, const CK_SLOT_INFO& slot_info,
               const CK_TOKEN_INFO& info, std::optional<std::string> reader, unsigned pool_limit,
               unsigned max_wrong_pins);

    const std::shared_ptr<Module> module;
    const CK_SLOT_ID slot_id;
    const CK_SLOT_INFO slot_info;
    const CK_TOKEN_INFO info;  // as read when the token was found
    const std::string uri;
    const std::optional<std::string> reader;
    const unsigned max_wrong_pins;
    // TokenInfo::incarnation: process-wide, so that no two TokenStates ever share one.
    const std::uint64_t incarnation;

    // Removed (or replaced) since it was found: every Login of it is dead.
    std::atomic<bool> gone{false};
    PKCS11_SLOT* slot = nullptr;  // guarded by module->lock; null once gone

    SessionPool pool;

    std::mutex login;
    unsigned logins = 0;          // guarded by login
    Pkcs11Session login_session;  // guarded by login; open while logins > 0
    // Shared so that a PIN can be checked against it (50 ms of PBKDF2) without holding
    // `login`, which every signature takes briefly.
    std::shared_ptr<const PinVerifier> verifier;  // guarded by login
    unsigned pin_checks = 0;                      // guarded by login; checks running now
    std::condition_variable pin_check_done;       // with login: a check ended (pin_checks fell)
    unsigned wrong_pins = 0;                      // guarded by login

    std::shared_mutex objects;
    std::vector<PrivateKey> private_keys;  // guarded by objects
    bool private_keys_loaded = false;      // guarded by objects
    // What find_key answered, per key URI as asked, for as long as private_keys holds (a new
    // login or enumeration empties both). Reading the token's certificate objects for every
    // Sign was a third of the daemon's CPU per signature (SoftHSM2 reads its files for each
    // C_FindObjects). Guarded by objects.
    std::map<std::string, KeyInfo, std::less<>> key_infos;

    // Admits one libp11 operation on the slot (SessionPool), first probing with a session of
    // our own when libp11 might have to open one: a C_OpenSession that fails inside libp11
    // 0.4.12 never returns. Caller holds module->lock (shared) and `objects` (either way).
    SessionPool::Lease admit();
    // Throws TokenNotPresent (and marks the token gone) unless its slot still holds this
    // very token and, while logged in, the login session is still alive. Takes `login`.
    void ensure_present();
    // The cheap half of ensure_present for the signing path: throws TokenNotPresent once the
    // token is known to be gone (PC/SC removal, a failed call). Asking the module about the
    // slot, the token and the login session costs as much as a fifth of a SoftHSM2 RSA
    // signature, so sign() leaves that to the failure path, where C_Sign's own CKR says it.
    void throw_if_gone();
    // Once gone, ends the login session (C_Logout, C_CloseSession) even though Logins of the
    // token may still exist: a token that only seemed gone, or came back, must not stay
    // logged in behind them. Takes `login`.
    void settle_if_gone() noexcept;
    // Caller holds `login`.
    void end_login_session_locked() noexcept;
    // Forgets every session in libp11's pool for this slot, after one was left unusable (an
    // operation libp11 started and never ended). The sessions stay open in the module until
    // the slot list is released. Caller holds module->lock (shared) and `objects`
    // exclusively, so that no libp11 operation on the slot holds a session.
    void reset_libp11_sessions() noexcept;
    // Drops every libp11 pointer this token caches; caller holds module->lock exclusively.
    void forget_objects() noexcept;
    // Drops our private keys and libp11's object cache of the slot, whose private key handles
    // a login change makes stale (SoftHSM2 hands out new ones after a new login, and libp11,
    // which deduplicates by handle, would list every key twice). Caller holds module->lock
    // (shared) and `objects` exclusively.
    void forget_login_objects() noexcept;
    // Called by ~Login.
    void release_login() noexcept;
    bool logged_in();
};

struct ManagerState {
    TokenManagerOptions options;
    std::vector<std::shared_ptr<Module>> modules;
    std::mutex tokens_mutex;
    // Every token found, and the last one seen in each slot that has since gone.
    std::vector<std::shared_ptr<TokenState>> tokens;  // guarded by tokens_mutex

    std::vector<std::shared_ptr<TokenState>> snapshot();
};

}  // namespace hbsd::hsm::detail
