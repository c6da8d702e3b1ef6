#include "hsm/token_manager.hpp"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <utility>

#include "hsm/errors.hpp"
#include "hsm/keys.hpp"
#include "hsm/signer.hpp"
#include "hsm/token_state.hpp"
#include "hsm/uri.hpp"

// Why some calls bypass libp11 and go straight to the module's function list:
//  - C_Login/C_Logout: libp11 0.4.12's PKCS11_login keeps a heap copy of the PIN in the slot
//    (to log in again after fork) until the slot is released, and answers success for any
//    PIN once the slot is logged in. hsm/ must neither keep a PIN nor accept an unchecked
//    one, so it logs in on a session of its own, held open for as long as the token is
//    logged in (closing an application's last session would log it out).
//  - C_GetSlotInfo/C_GetTokenInfo: libp11 only re-reads token flags (PIN count low, final
//    try, locked) by re-enumerating every slot, which frees all its key handles; and its
//    session pool must not be asked for a session when the token is gone (session_pool.hpp).
//  - CKA_ALWAYS_AUTHENTICATE, which libp11 0.4.12 reads but does not expose (keys.cpp).
// Everything else - loading, slots, tokens, objects, private keys and signing - is libp11.

namespace hbsd::hsm {

namespace {

using detail::ManagerState;
using detail::Module;
using detail::TokenState;

std::string trimmed(const unsigned char* field, size_t size) {
    std::string s(reinterpret_cast<const char*>(field), size);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\0')) s.pop_back();
    return s;
}

unsigned pool_limit(const TokenManagerOptions& options, const CK_TOKEN_INFO& info) {
    unsigned limit = std::min(options.max_sessions_per_token, SessionPool::libp11_max_sessions);
    const unsigned long max = info.ulMaxSessionCount;
    if (max != CK_EFFECTIVELY_INFINITE && max != CK_UNAVAILABLE_INFORMATION) {
        // One session is ours for the login.
        limit = std::min<unsigned long>(limit, max > 1 ? max - 1 : 1);
    }
    return std::max(limit, 1u);
}

bool token_usable(const CK_TOKEN_INFO& info) {
    return info.flags & CKF_TOKEN_INITIALIZED;
}

bool same_token(const CK_TOKEN_INFO& a, const CK_TOKEN_INFO& b) {
    return std::memcmp(a.label, b.label, sizeof a.label) == 0 &&
           std::memcmp(a.serialNumber, b.serialNumber, sizeof a.serialNumber) == 0 &&
           std::memcmp(a.model, b.model, sizeof a.model) == 0 &&
           std::memcmp(a.manufacturerID, b.manufacturerID, sizeof a.manufacturerID) == 0;
}

// What a slot holds right now, read through the function list (cheap, touches no session).
struct SlotView {
    CK_SLOT_ID id = 0;
    CK_SLOT_INFO slot{};
    std::optional<CK_TOKEN_INFO> token;  // an initialised token
};

std::vector<SlotView> read_slots(Module& module) {
    auto& f = module.functions;
    CK_ULONG count = 0;
    if (f->C_GetSlotList(CK_FALSE, nullptr, &count) != CKR_OK)
        throw Error::internal("C_GetSlotList failed for module " + module.name);
    std::vector<CK_SLOT_ID> ids(count);
    if (count && f->C_GetSlotList(CK_FALSE, ids.data(), &count) != CKR_OK)
        throw Error::internal("C_GetSlotList failed for module " + module.name);
    ids.resize(std::min<size_t>(count, ids.size()));
    std::vector<SlotView> views;
    for (CK_SLOT_ID id : ids) {
        SlotView view{id, {}, std::nullopt};
        CK_TOKEN_INFO token{};
        if (f->C_GetSlotInfo(id, &view.slot) == CKR_OK && (view.slot.flags & CKF_TOKEN_PRESENT) &&
            f->C_GetTokenInfo(id, &token) == CKR_OK && token_usable(token))
            view.token = token;
        views.push_back(view);
    }
    return views;
}

std::vector<std::shared_ptr<TokenState>> tokens_of(ManagerState& state, const Module& module) {
    std::vector<std::shared_ptr<TokenState>> mine;
    for (auto& t : state.snapshot())
        if (t->module.get() == &module) mine.push_back(t);
    return mine;
}

std::shared_ptr<TokenState> live_in(const std::vector<std::shared_ptr<TokenState>>& mine,
                                    CK_SLOT_ID id) {
    for (auto& t : mine)
        if (t->slot_id == id && !t->gone) return t;
    return nullptr;
}

// Whether libp11's slot list no longer describes what the slots hold. Marks tokens that are
// gone (removed, replaced, or taken out and put back) on the way. Caller holds module.lock.
bool slots_changed(Module& module, const std::vector<std::shared_ptr<TokenState>>& mine,
                   const std::vector<SlotView>& views) {
    const auto p11_slots = module.slots.slots();
    bool changed = p11_slots.empty() || views.size() != p11_slots.size();
    for (const auto& view : views) {
        auto live = live_in(mine, view.id);
        if (live) {
            try {
                live->ensure_present();
            } catch (const Error&) {
                live = nullptr;  // ensure_present marked it gone
            }
        }
        const auto p11 = std::ranges::find_if(
            p11_slots, [&](PKCS11_SLOT& s) { return PKCS11_get_slotid_from_slot(&s) == view.id; });
        changed = changed || p11 == p11_slots.end() ||
                  view.token.has_value() != (live != nullptr) ||
                  (view.token && (!p11->token || !same_token(*view.token, live->info)));
    }
    return changed;
}

// Rebuilds libp11's slot list and the module's tokens; caller holds module.lock exclusively.
//
// A rebuild makes new PKCS11_SLOTs with empty session pools. The old list can be released
// (which closes every session of its slots, logging them out) only while no token of the
// module is logged in; until then it is retired (Module::retired), not released, so tokens
// that stay put keep their login across other tokens coming and going.
void rebuild_module(ManagerState& state, const std::shared_ptr<Module>& module,
                    const std::vector<std::shared_ptr<TokenState>>& mine,
                    const std::vector<SlotView>& views) {
    Pkcs11SlotList fresh =
        views.empty() ? Pkcs11SlotList::none(module->ctx) : Pkcs11SlotList::enumerate(module->ctx);
    // libp11 frees every PKCS11_SLOT/TOKEN/KEY of a released list; drop our pointers first.
    for (auto& t : mine) {
        t->settle_if_gone();
        t->forget_objects();
    }
    Pkcs11SlotList old = std::exchange(module->slots, std::move(fresh));
    if (module->logged_in_tokens > 0)
        module->retired.push_back(std::move(old));
    else
        old = Pkcs11SlotList();  // released now, while the new list has no session yet

    std::vector<std::shared_ptr<TokenState>> found;
    for (PKCS11_SLOT& slot : module->slots.slots()) {
        const CK_SLOT_ID id = PKCS11_get_slotid_from_slot(&slot);
        const auto view = std::ranges::find_if(views, [id](auto& v) { return v.id == id; });
        auto previous = live_in(mine, id);
        const bool usable = view != views.end() && view->token && slot.token;
        if (previous && usable && same_token(previous->info, *view->token)) {
            previous->slot = &slot;
            found.push_back(previous);
            continue;
        }
        if (previous) {
            previous->gone = true;
            previous->settle_if_gone();
        }
        if (!usable) continue;
        std::optional<std::string> reader;
        if (slot.removable && slot.description) reader = slot.description;
        auto token = std::make_shared<TokenState>(module, id, view->slot, *view->token, reader,
                                                  pool_limit(state.options, *view->token),
                                                  state.options.max_wrong_pins_while_logged_in);
        token->slot = &slot;
        found.push_back(std::move(token));
    }

    std::lock_guard lock(state.tokens_mutex);
    std::erase_if(state.tokens, [&](const auto& t) { return t->module == module; });
    // Keep the last gone token of each slot so that its URI answers TokenNotPresent.
    for (auto& t : mine) {
        const bool replaced =
            std::ranges::any_of(found, [&](const auto& f) { return f->slot_id == t->slot_id; });
        if (t->gone && !replaced) state.tokens.push_back(t);
    }
    for (auto& t : found) state.tokens.push_back(std::move(t));
}

// Brings one module's tokens up to date. Looks under the shared lock first, so that asking
// while signatures run (which hold it shared) does not stall them when nothing changed.
void refresh_module(ManagerState& state, const std::shared_ptr<Module>& module) {
    {
        std::shared_lock lock(module->lock);
        const auto mine = tokens_of(state, *module);
        const bool changed = slots_changed(*module, mine, read_slots(*module));
        for (auto& t : mine) t->settle_if_gone();
        if (!changed && (module->retired.empty() || module->logged_in_tokens > 0)) return;
    }
    std::unique_lock lock(module->lock);
    const auto mine = tokens_of(state, *module);
    const auto views = read_slots(*module);
    if (slots_changed(*module, mine, views))
        rebuild_module(state, module, mine, views);
    else
        module->release_retired();
}

// What a module answers when it lost its device or its own state: an HSM that restarted
// (network HSMs lose every session and login with their connection), a module whose daemon
// died. PKCS#11 has one way back from that without restarting the process: C_Finalize, then
// C_Initialize, then everything afresh.
bool needs_reinitialisation(CK_RV rv) noexcept {
    return rv == CKR_CRYPTOKI_NOT_INITIALIZED || rv == CKR_DEVICE_ERROR || rv == CKR_GENERAL_ERROR;
}

// Re-initialises a module that answers C_GetSlotList with needs_reinitialisation(), at most
// once a second. Every token of the module is gone afterwards (its Logins are dead, as after a
// removal: a new PIN is needed), and its tokens are found again as new ones.
void reinitialise_module(ManagerState& state, const std::shared_ptr<Module>& module) {
    using namespace std::chrono;
    const auto now = duration_cast<nanoseconds>(steady_clock::now().time_since_epoch()).count();
    auto due = module->next_reinit_ns.load();
    if (now < due ||
        !module->next_reinit_ns.compare_exchange_strong(due, now + nanoseconds(1s).count()))
        return;
    std::unique_lock lock(module->lock);
    auto& f = module->functions;
    CK_ULONG count = 0;
    if (!needs_reinitialisation(f->C_GetSlotList(CK_FALSE, nullptr, &count))) return;
    const auto mine = tokens_of(state, *module);
    for (auto& t : mine) {
        t->gone = true;
        t->settle_if_gone();  // C_Logout/C_CloseSession fail harmlessly on the dead module
        t->forget_objects();
    }
    // Released before C_Finalize: releasing a list later would C_CloseAllSessions the slots of
    // the module's next life.
    module->retired.clear();
    module->slots = Pkcs11SlotList();
    f->C_Finalize(nullptr);
    // As libp11 initialises it: the module may use OS threads and locks.
    CK_C_INITIALIZE_ARGS args{};
    args.flags = CKF_OS_LOCKING_OK;
    const CK_RV rv = f->C_Initialize(&args);
    ++module->session_generation;
    if (rv != CKR_OK && rv != CKR_CRYPTOKI_ALREADY_INITIALIZED) {
        module->slots = Pkcs11SlotList::none(module->ctx);
        return;
    }
    rebuild_module(state, module, mine, read_slots(*module));
}

// A module that cannot list its slots right now (a PC/SC module while pcscd restarts) only
// shows no new tokens until a later refresh succeeds; the other modules carry on. One that
// lost its state (needs_reinitialisation) is re-initialised.
void refresh_all(ManagerState& state) {
    for (auto& module : state.modules) {
        try {
            refresh_module(state, module);
        } catch (const Error&) {
            CK_ULONG count = 0;
            try {
                if (needs_reinitialisation(
                        module->functions->C_GetSlotList(CK_FALSE, nullptr, &count)))
                    reinitialise_module(state, module);
            } catch (const Error&) {
            }
        }
    }
}

// Removable slots (readers) without a token, as (module, slot id, slot info).
struct EmptySlot {
    std::shared_ptr<Module> module;
    CK_SLOT_ID id;
    CK_SLOT_INFO info;
};

std::vector<EmptySlot> empty_readers(ManagerState& state) {
    std::vector<EmptySlot> out;
    const auto tokens = state.snapshot();
    for (auto& module : state.modules) {
        std::shared_lock lock(module->lock);
        for (PKCS11_SLOT& slot : module->slots.slots()) {
            const CK_SLOT_ID id = PKCS11_get_slotid_from_slot(&slot);
            const bool known = std::ranges::any_of(
                tokens, [&](auto& t) { return t->module == module && t->slot_id == id; });
            CK_SLOT_INFO info{};
            if (known || !slot.removable || module->functions->C_GetSlotInfo(id, &info) != CKR_OK)
                continue;
            if (!(info.flags & CKF_TOKEN_PRESENT)) out.push_back({module, id, info});
        }
    }
    return out;
}

// The one token `text` names. Gone tokens and empty readers answer TokenNotPresent, unknown
// or ambiguous URIs TokenNotFound.
std::shared_ptr<TokenState> resolve_token(ManagerState& state, std::string_view text) {
    const auto uri = Pkcs11Uri::parse(text);
    if (!uri) throw Error::token_not_found(text);
    for (int attempt = 0; attempt < 2; ++attempt) {
        std::vector<std::shared_ptr<TokenState>> live, gone;
        for (auto& t : state.snapshot()) {
            if (!uri->matches_module(t->module->info) ||
                !uri->matches_slot(t->slot_info, t->slot_id) || !uri->matches_token(t->info))
                continue;
            (t->gone ? gone : live).push_back(t);
        }
        if (live.size() == 1) return live.front();
        if (live.size() > 1) throw Error::token_not_found(text);
        if (!gone.empty() && attempt == 1) throw Error::token_not_present(text);
        // Not known (yet): a token may have been inserted since the last enumeration.
        if (attempt == 0) refresh_all(state);
    }
    const CK_TOKEN_INFO blank = blank_token_info();
    for (const auto& slot : empty_readers(state))
        if (uri->matches_module(slot.module->info) && uri->matches_slot(slot.info, slot.id) &&
            uri->matches_token(blank))
            throw Error::token_not_present(text);
    throw Error::token_not_found(text);
}

}  // namespace

TokenManager::TokenManager(std::vector<ModuleConfig> modules, TokenManagerOptions options)
    : state_(std::make_unique<detail::ManagerState>()) {
    state_->options = options;
    for (const auto& config : modules) {
        // A second load of one library would share (and at unload finalise) the first one.
        for (const auto& m : state_->modules)
            if (m->path == config.path || m->name == config.name)
                throw Error::internal("PKCS#11 module configured twice: " + config.path);
        state_->modules.push_back(std::make_shared<Module>(config));
    }
    refresh_all(*state_);
}

TokenManager::TokenManager(TokenManager&&) noexcept = default;
TokenManager& TokenManager::operator=(TokenManager&&) noexcept = default;
TokenManager::~TokenManager() = default;

void TokenManager::refresh() {
    refresh_all(*state_);
}

std::vector<TokenInfo> TokenManager::list_tokens() {
    refresh_all(*state_);
    std::vector<TokenInfo> out;
    for (auto& t : state_->snapshot()) {
        TokenInfo info;
        info.uri = t->uri;
        info.label = trimmed(t->info.label, sizeof t->info.label);
        info.manufacturer = trimmed(t->info.manufacturerID, sizeof t->info.manufacturerID);
        info.model = trimmed(t->info.model, sizeof t->info.model);
        info.serial = trimmed(t->info.serialNumber, sizeof t->info.serialNumber);
        info.present = !t->gone;
        info.reader = t->reader;
        info.logged_in = info.present && t->logged_in();
        info.module = t->module->name;
        info.incarnation = t->incarnation;
        out.push_back(std::move(info));
    }
    for (const auto& slot : empty_readers(*state_)) {
        TokenInfo info;
        info.uri = format_slot_uri(slot.info, slot.id);
        info.present = false;
        info.reader = trimmed(slot.info.slotDescription, sizeof slot.info.slotDescription);
        info.module = slot.module->name;
        out.push_back(std::move(info));
    }
    return out;
}

std::vector<KeyInfo> TokenManager::list_keys(std::string_view token_uri) {
    auto token = resolve_token(*state_, token_uri);
    std::shared_lock module_lock(token->module->lock);
    token->ensure_present();
    const bool logged_in = token->logged_in();
    std::unique_lock objects_lock(token->objects);
    const auto lease = token->admit();
    return load_key_list(*token, logged_in);
}

Login TokenManager::login(std::string_view token_uri, std::string_view pin) {
    // PKCS#11 PINs are short; a huge one is a caller bug, not a guess worth a retry count.
    if (pin.size() > 1024) throw Error::invalid_parameter("pin");
    auto token = resolve_token(*state_, token_uri);
    std::shared_lock module_lock(token->module->lock);
    token->ensure_present();
    auto& f = token->module->functions;
    std::unique_lock lock(token->login);

    while (token->logins > 0) {
        if (token->wrong_pins >= token->max_wrong_pins) throw Error::pin_locked();
        // Each check in flight holds one of the tries left, so that parallel guesses cannot
        // exceed the limit; a check beyond them waits for one to finish rather than being
        // refused, since many people may present their (right) PIN at the same moment.
        if (token->wrong_pins + token->pin_checks >= token->max_wrong_pins) {
            token->pin_check_done.wait(lock);
            continue;
        }
        const auto verifier = token->verifier;
        ++token->pin_checks;
        lock.unlock();
        bool matches = false;
        try {
            matches = verifier && verifier->matches(pin);
        } catch (...) {
            lock.lock();
            --token->pin_checks;
            token->pin_check_done.notify_all();
            throw;
        }
        lock.lock();
        --token->pin_checks;
        token->pin_check_done.notify_all();
        if (token->gone) throw Error::token_not_present(token->uri);
        // The login state this PIN was checked against ended meanwhile: judge it afresh.
        if (token->verifier != verifier) continue;
        if (matches) {
            ++token->logins;
            return Login(token);
        }
        ++token->wrong_pins;
        const unsigned left =
            token->max_wrong_pins - std::min(token->max_wrong_pins, token->wrong_pins);
        if (left == 0) throw Error::pin_locked();
        throw Error::pin_incorrect(static_cast<long>(left));
    }

    CK_TOKEN_INFO info{};
    if (f->C_GetTokenInfo(token->slot_id, &info) == CKR_OK && (info.flags & CKF_USER_PIN_LOCKED))
        throw Error::pin_locked();
    CK_SESSION_HANDLE handle = 0;
    if (const CK_RV rv =
            f->C_OpenSession(token->slot_id, CKF_SERIAL_SESSION, nullptr, nullptr, &handle);
        rv != CKR_OK) {
        if (ckr_means_token_gone(rv)) token->gone = true;
        throw ckr_error(rv, "C_OpenSession", token->uri);
    }
    Pkcs11Session session(f.operator->(), handle);
    const CK_RV rv =
        f->C_Login(handle, CKU_USER,
                   reinterpret_cast<unsigned char*>(const_cast<char*>(pin.data())), pin.size());
    if (rv == CKR_USER_ALREADY_LOGGED_IN) {
        // Logged in by someone else in this process (another TokenManager on the same
        // module): this PIN cannot be checked, so it is not accepted.
        throw Error::internal("token " + token->uri + " is logged in outside hsm/");
    }
    if (rv != CKR_OK) {
        std::optional<unsigned long> flags;
        if (f->C_GetTokenInfo(token->slot_id, &info) == CKR_OK) flags = info.flags;
        if (ckr_means_token_gone(rv)) token->gone = true;
        throw login_error(rv, flags, token->uri);
    }
    token->verifier = std::make_shared<const PinVerifier>(pin);
    token->wrong_pins = 0;
    token->login_session = std::move(session);
    token->logins = 1;
    ++token->module->logged_in_tokens;
    {
        std::unique_lock objects_lock(token->objects);
        token->forget_login_objects();
    }
    if (token->gone) {
        // Removed while we logged in: do not leave it logged in behind a dead Login.
        token->end_login_session_locked();
        token->logins = 0;
        throw Error::token_not_present(token->uri);
    }
    return Login(token);
}

namespace {

// The one private key of the login's token that `key_uri` names, as a new reference.
// Caller holds the module lock (shared).
EvpPkey find_private_key(TokenState& token, std::string_view key_uri, detail::PrivateKey* copy) {
    const auto uri = Pkcs11Uri::parse(key_uri);
    if (!uri || !uri->matches_module(token.module->info) ||
        !uri->matches_slot(token.slot_info, token.slot_id) || !uri->matches_token(token.info))
        throw Error::key_not_found(key_uri);
    auto lookup = [&]() -> const detail::PrivateKey* {
        const detail::PrivateKey* match = nullptr;
        for (const auto& k : token.private_keys) {
            if (!uri->matches_private_key(k.id, k.label)) continue;
            if (match) throw Error::key_not_found(key_uri);  // ambiguous
            match = &k;
        }
        return match;
    };
    {
        std::shared_lock lock(token.objects);
        if (token.private_keys_loaded) {
            if (const auto* k = lookup()) {
                if (copy)
                    *copy = {k->id,
                             k->label,
                             k->uri,
                             nullptr,
                             k->algorithm,
                             k->bits,
                             k->always_authenticate};
                EVP_PKEY_up_ref(k->key.get());
                return EvpPkey(k->key.get());
            }
        }
    }
    // Not loaded yet, or a key created since: read the token's private keys (again).
    std::unique_lock lock(token.objects);
    {
        const auto lease = token.admit();
        load_private_keys(token);
    }
    const auto* k = lookup();
    if (!k) throw Error::key_not_found(key_uri);
    if (copy)
        *copy = {k->id, k->label, k->uri, nullptr, k->algorithm, k->bits, k->always_authenticate};
    EVP_PKEY_up_ref(k->key.get());
    return EvpPkey(k->key.get());
}

TokenState& token_of(const Login& login, const std::shared_ptr<TokenState>& token) {
    if (!login || !token) throw Error::internal("use of a moved-from Login");
    return *token;
}

}  // namespace

KeyInfo TokenManager::find_key(const Login& login, std::string_view key_uri) {
    TokenState& token = token_of(login, login.token_);
    std::shared_lock module_lock(token.module->lock);
    token.throw_if_gone();
    {
        std::shared_lock lock(token.objects);
        if (auto it = token.key_infos.find(key_uri); it != token.key_infos.end()) return it->second;
    }
    token.ensure_present();  // a real look at the token before reading its objects
    detail::PrivateKey key;
    find_private_key(token, key_uri, &key);
    KeyInfo info;
    info.uri = key.uri;
    info.label = key.label;
    info.algorithm = key.algorithm;
    info.bits = key.bits;
    std::unique_lock lock(token.objects);
    const auto lease = token.admit();
    attach_certificate(info, key.id, load_certificates(token));
    constexpr std::size_t kMaxKeyInfos = 256;  // URIs are the caller's text: bounded
    if (token.key_infos.size() >= kMaxKeyInfos) token.key_infos.clear();
    token.key_infos.insert_or_assign(std::string(key_uri), info);
    return info;
}

std::vector<unsigned char> TokenManager::sign(const Login& login, std::string_view key_uri,
                                              Mechanism mechanism,
                                              std::span<const unsigned char> sha256_digest) {
    if (sha256_digest.size() != 32) throw Error::invalid_parameter("digest");
    TokenState& token = token_of(login, login.token_);
    std::shared_lock module_lock(token.module->lock);
    token.throw_if_gone();
    detail::PrivateKey key;
    EvpPkey pkey = find_private_key(token, key_uri, &key);
    const bool rsa_mechanism = mechanism != Mechanism::ecdsa_sha256;
    if (rsa_mechanism != (key.algorithm == KeyAlgorithm::rsa))
        throw Error::invalid_parameter("mechanism");

    if (key.always_authenticate)
        throw Error::internal("key " + key.uri +
                              " wants a PIN for every signature (CKA_ALWAYS_AUTHENTICATE), "
                              "which hsm/ does not support");

    // Shared: signing only reads libp11's key objects, which an enumeration may replace. The
    // lease comes second: whoever waits for one must not block an enumeration that holds one.
    std::shared_lock objects_lock(token.objects);
    auto lease = token.admit();
    clear_p11_failures();
    auto signature = sign_digest(pkey.get(), mechanism, sha256_digest);
    if (!signature.empty()) return signature;
    const auto failure = take_p11_failure();
    if (failure.ui_failed || failure.ckr == CKR_OPERATION_ACTIVE) {
        // libp11 0.4.12 gives up after C_SignInit (e.g. when its UI has no PIN for a
        // context-specific login) and pools the session with the operation still active;
        // every later signature on it would fail. Drop the pool's sessions.
        lease = SessionPool::Lease();
        objects_lock.unlock();
        std::unique_lock exclusive(token.objects);
        token.reset_libp11_sessions();
        throw Error::internal("signing with " + key.uri + " failed: " + failure.detail);
    }
    if (failure.ckr) {
        if (ckr_means_token_gone(*failure.ckr)) token.gone = true;
        if (!token.gone) {
            // A device error while the token is being pulled, or an HSM restarting under us:
            // if the token has gone, that is what the caller needs to hear (TokenNotPresent),
            // not the error code of the dying call.
            lease = SessionPool::Lease();
            objects_lock.unlock();  // ensure_present takes `login`, which comes before it
            try {
                token.ensure_present();
            } catch (const Error& e) {
                if (e.code() == Errc::TokenNotPresent) throw;
            }
        }
        // Gone, whether this call or a concurrent one found out first (signatures on one token
        // run side by side: the first to fail looks, the others must say the same).
        if (token.gone) {
            lease = SessionPool::Lease();
            if (objects_lock.owns_lock()) objects_lock.unlock();  // throw_if_gone takes `login`
            token.throw_if_gone();
        }
        throw ckr_error(*failure.ckr, "C_Sign", token.uri, key_uri);
    }
    throw Error::internal("signing failed: " + failure.detail);
}

}  // namespace hbsd::hsm
