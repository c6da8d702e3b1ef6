#include "hsm/token_state.hpp"

#include <cstring>
#include <utility>

#include "hsm/errors.hpp"
#include "hsm/uri.hpp"

namespace hbsd::hsm::detail {

Module::Module(const ModuleConfig& config)
    : name(config.name), path(config.path), ctx(config.path, ui), functions(config.path) {
    if (functions->C_GetInfo(&info) != CKR_OK) std::memset(&info, 0, sizeof info);
}

void Module::release_retired() noexcept {
    if (retired.empty() || logged_in_tokens > 0) return;
    retired.clear();
    for (PKCS11_SLOT& slot : slots.slots()) PKCS11_open_session(&slot, 0);
    ++session_generation;
}

namespace {

std::uint64_t next_incarnation() noexcept {
    static std::atomic<std::uint64_t> last{0};
    return ++last;
}

}  // namespace

TokenState::TokenState(std::shared_ptr<Module> module_, CK_SLOT_ID slot_id_,
                       const CK_SLOT_INFO& slot_info_, const CK_TOKEN_INFO& info_,
                       std::optional<std::string> reader_, unsigned pool_limit,
                       unsigned max_wrong_pins_)
    : module(std::move(module_)),
      slot_id(slot_id_),
      slot_info(slot_info_),
      info(info_),
      uri(format_token_uri(info_)),
      reader(std::move(reader_)),
      max_wrong_pins(max_wrong_pins_),
      incarnation(next_incarnation()),
      pool(pool_limit) {}

namespace {

bool same_token(const CK_TOKEN_INFO& a, const CK_TOKEN_INFO& b) {
    return std::memcmp(a.label, b.label, sizeof a.label) == 0 &&
           std::memcmp(a.manufacturerID, b.manufacturerID, sizeof a.manufacturerID) == 0 &&
           std::memcmp(a.model, b.model, sizeof a.model) == 0 &&
           std::memcmp(a.serialNumber, b.serialNumber, sizeof a.serialNumber) == 0;
}

}  // namespace

void TokenState::ensure_present() {
    if (gone) {
        settle_if_gone();
        throw Error::token_not_present(uri);
    }
    auto& f = module->functions;
    CK_SLOT_INFO slot_now{};
    CK_TOKEN_INFO token_now{};
    const bool present =
        f->C_GetSlotInfo(slot_id, &slot_now) == CKR_OK && (slot_now.flags & CKF_TOKEN_PRESENT) &&
        f->C_GetTokenInfo(slot_id, &token_now) == CKR_OK && same_token(token_now, info);
    bool session_alive = true;
    {
        // A token taken out and put back looks the same, but every session it had is dead.
        std::lock_guard lock(login);
        if (login_session) {
            CK_SESSION_INFO session_info{};
            session_alive = f->C_GetSessionInfo(login_session.get(), &session_info) == CKR_OK;
        }
    }
    if (!present || !session_alive) {
        gone = true;
        settle_if_gone();
        throw Error::token_not_present(uri);
    }
}

void TokenState::throw_if_gone() {
    if (!gone) return;
    settle_if_gone();
    throw Error::token_not_present(uri);
}

void TokenState::end_login_session_locked() noexcept {
    if (!login_session) return;
    // On a token that is really gone this fails harmlessly; its handle cannot have been
    // reused by a session of ours on a successor token, which gets a TokenState (and
    // sessions) only after this ran (refresh_module settles before it re-enumerates).
    module->functions->C_Logout(login_session.get());
    login_session = Pkcs11Session();
    verifier.reset();
    wrong_pins = 0;
    --module->logged_in_tokens;
}

void TokenState::settle_if_gone() noexcept {
    if (!gone) return;
    std::lock_guard lock(login);
    end_login_session_locked();
}

void TokenState::forget_objects() noexcept {
    private_keys.clear();
    private_keys_loaded = false;
    key_infos.clear();
    slot = nullptr;
}

void TokenState::reset_libp11_sessions() noexcept {
    if (slot) PKCS11_open_session(slot, 0);
    ++module->session_generation;
}

SessionPool::Lease TokenState::admit() {
    auto lease = pool.acquire(module->session_generation);
    if (!lease.needs_probe()) return lease;
    auto& f = module->functions;
    CK_SESSION_HANDLE handle = 0;
    const CK_RV rv = f->C_OpenSession(slot_id, CKF_SERIAL_SESSION, nullptr, nullptr, &handle);
    if (rv != CKR_OK) {
        if (ckr_means_token_gone(rv)) gone = true;
        throw ckr_error(rv, "C_OpenSession", uri);
    }
    // Never the application's last session while logged in (the login session is open), so
    // closing it logs nothing out.
    f->C_CloseSession(handle);
    lease.probed();
    return lease;
}

void TokenState::forget_login_objects() noexcept {
    private_keys.clear();
    private_keys_loaded = false;
    key_infos.clear();
    // libp11 has no call to empty its caches alone; PKCS11_logout on a slot it did not log
    // in (hsm/ logs in by itself) wipes them and calls nothing on the module.
    if (slot) PKCS11_logout(slot);
}

bool TokenState::logged_in() {
    std::lock_guard lock(login);
    return static_cast<bool>(login_session);
}

void TokenState::release_login() noexcept {
    {
        std::shared_lock module_lock(module->lock);
        std::lock_guard lock(login);
        if (logins == 0 || --logins > 0) return;
        {
            std::unique_lock objects_lock(objects);
            forget_login_objects();
        }
        end_login_session_locked();
        // An exclusive lock waits for every signature running on the module: take it only
        // when there is something to release.
        if (module->retired.empty() || module->logged_in_tokens > 0) return;
    }
    std::unique_lock module_lock(module->lock);
    module->release_retired();
}

std::vector<std::shared_ptr<TokenState>> ManagerState::snapshot() {
    std::lock_guard lock(tokens_mutex);
    return tokens;
}

}  // namespace hbsd::hsm::detail

namespace hbsd::hsm {

Login::Login(std::shared_ptr<detail::TokenState> token) noexcept : token_(std::move(token)) {}
Login::Login(Login&& other) noexcept = default;
Login& Login::operator=(Login&& other) noexcept {
    if (this != &other) {
        if (token_) token_->release_login();
        token_ = std::move(other.token_);
    }
    return *this;
}
Login::~Login() {
    if (token_) token_->release_login();
}

const std::string& Login::token_uri() const {
    if (!token_) throw Error::internal("use of a moved-from Login");
    return token_->uri;
}

std::uint64_t Login::incarnation() const {
    if (!token_) throw Error::internal("use of a moved-from Login");
    return token_->incarnation;
}

}  // namespace hbsd::hsm
