// hsm/: hardware keys through PKCS#11 (libp11), named by RFC 7512 pkcs11: URIs.
//
// The interface is deliberately narrow and made of plain values (strings, byte vectors, enums)
// so that it can move into a sandboxed helper process later without changing its callers;
// a Login would then become a handle number on the wire. Every failure is an hbsd::Error
// (protocol/error.hpp) carrying the contract's error name; nothing else is thrown.
//
// Thread-safety: all member functions of TokenManager may be called from many threads at
// once. sign() on one token runs in parallel up to the token's session pool size
// (TokenManagerOptions::max_sessions_per_token). PKCS#11 calls block: call from worker
// threads, never from an event loop.
//
// One TokenManager per process: a PKCS#11 module's initialisation and login state belong to
// the whole process, so a second manager on the same module would share (and finalise) it.
//
// The libp11 0.4.12 behaviour hsm/ works around is described where it matters:
// session_pool.hpp (session pool), pin_verifier.hpp (login), module.hpp (slot lists),
// token_manager.cpp (direct PKCS#11 calls), signer.cpp (RSA-PSS), keys.cpp (leaks).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace hbsd::hsm {

// One PKCS#11 module from the configuration, e.g. {"softhsm", "/usr/lib/softhsm/libsofthsm2.so"}.
struct ModuleConfig {
    std::string name;
    std::string path;
};

struct TokenInfo {
    // pkcs11:model=..;manufacturer=..;serial=..;token=.. (for a reader without a token:
    // pkcs11:slot-description=..;slot-manufacturer=..;slot-id=..)
    std::string uri;
    std::string label;
    std::string manufacturer;
    std::string model;
    std::string serial;
    bool present = false;
    std::optional<std::string> reader;  // slot description of a removable slot (PC/SC reader)
    bool logged_in = false;
    std::string module;  // ModuleConfig::name of the module that serves it (not on the wire)
    // Which life of the token this is (not on the wire): a new number each time hsm/ finds the
    // token afresh - re-inserted, or back after its module was re-initialised (a restarted
    // HSM) - even when its URI and serial are the same. Logins of an earlier incarnation are
    // dead. 0 for a reader without a token.
    std::uint64_t incarnation = 0;
};

enum class KeyAlgorithm { rsa, ec };

struct KeyInfo {
    std::string uri;  // token URI + ;id=%01;object=<label>;type=private
    std::string label;
    KeyAlgorithm algorithm = KeyAlgorithm::rsa;
    int bits = 0;                                // RSA modulus bits, or EC order bits (256, 384)
    std::optional<std::string> certificate_pem;  // certificate stored beside the key (same CKA_ID)
    std::optional<std::string> fingerprint;      // lowercase hex SHA-256 of the certificate DER
    std::vector<unsigned char> certificate_der;  // empty when there is no certificate
    // The type of the certificate's public key (which decides the mechanism: a verifier reads
    // it from KeyInfo), when the certificate parses and holds an RSA or EC key.
    std::optional<KeyAlgorithm> certificate_algorithm;
};

// Input is always a 32-byte SHA-256 digest.
//  rsa_pkcs1_sha256: RSASSA-PKCS1-v1_5 over the SHA-256 DigestInfo (CKM_RSA_PKCS)
//  rsa_pss_sha256:   RSASSA-PSS, SHA-256, MGF1-SHA-256, salt length 32 (CKM_RSA_PKCS_PSS)
//  ecdsa_sha256:     ECDSA (CKM_ECDSA); output is raw r||s, each half padded to the
//                    curve's byte size (the XML-DSig form), not DER
enum class Mechanism { rsa_pkcs1_sha256, rsa_pss_sha256, ecdsa_sha256 };

struct TokenManagerOptions {
    // Upper bound of concurrent PKCS#11 sessions per token (libp11's per-slot pool).
    unsigned max_sessions_per_token = 8;
    // Wrong PINs accepted while a token is already logged in (checked against an in-memory
    // verifier, see Login) before further logins to it are refused until it is logged out.
    unsigned max_wrong_pins_while_logged_in = 3;
};

namespace detail {
struct TokenState;
struct ManagerState;
}  // namespace detail

// Proof that a PIN was presented for one token. Move-only; while at least one Login of a token
// lives, the token stays logged in; when the last one goes away the token is logged out. A
// Login dies with its token: once the token is removed (even if put back) every use of it is
// TokenNotPresent, and a new login is needed. It may outlive its TokenManager (it keeps the
// module loaded until it goes).
class Login {
  public:
    Login(Login&&) noexcept;
    Login& operator=(Login&&) noexcept;
    Login(const Login&) = delete;
    Login& operator=(const Login&) = delete;
    ~Login();

    // False only for a moved-from Login.
    explicit operator bool() const noexcept { return token_ != nullptr; }
    // The canonical URI of the token this Login belongs to.
    const std::string& token_uri() const;
    // TokenInfo::incarnation of the token this Login belongs to.
    std::uint64_t incarnation() const;

  private:
    friend class TokenManager;
    explicit Login(std::shared_ptr<detail::TokenState> token) noexcept;
    std::shared_ptr<detail::TokenState> token_;
};

class TokenManager {
  public:
    // Loads and initialises every module (Error::internal if one cannot be loaded, or one
    // path or name appears twice).
    explicit TokenManager(std::vector<ModuleConfig> modules, TokenManagerOptions options = {});
    TokenManager(TokenManager&&) noexcept;
    TokenManager& operator=(TokenManager&&) noexcept;
    TokenManager(const TokenManager&) = delete;
    TokenManager& operator=(const TokenManager&) = delete;
    ~TokenManager();

    // Re-reads the slots, then lists every initialised token (uninitialised ones cannot sign),
    // every token seen before and gone since (present = false, its URI answers
    // TokenNotPresent), and every removable slot - a reader - without a token (present =
    // false, empty label, a slot URI).
    std::vector<TokenInfo> list_tokens();
    // Keys (public objects, with the certificate stored beside each) of the one token matching
    // token_uri. No login needed where the token allows it. TokenNotFound, TokenNotPresent.
    std::vector<KeyInfo> list_keys(std::string_view token_uri);
    // Logs in to the one token matching token_uri (any URI naming exactly one token or slot).
    // PinIncorrect: retries_left 1 when the token raises CKF_USER_PIN_FINAL_TRY, else absent;
    // PinLocked: CKR_PIN_LOCKED, CKF_USER_PIN_LOCKED or an expired PIN. TokenNotFound,
    // TokenNotPresent, InvalidParameter (a PIN over 1024 bytes).
    // While the token is already logged in, the PIN is checked against a verifier of the one
    // that logged it in (pin_verifier.hpp): a wrong one is PinIncorrect with retries_left =
    // the tries left before PinLocked, which then holds until every Login of the token is gone.
    // The PIN is not kept beyond the call.
    Login login(std::string_view token_uri, std::string_view pin);
    // KeyNotFound unless key_uri matches exactly one private key on the login's token (token
    // attributes in key_uri, if any, must match that token). TokenNotPresent.
    KeyInfo find_key(const Login& login, std::string_view key_uri);
    // Signs a 32-byte SHA-256 digest with the private key named by key_uri on the login's token.
    // KeyNotFound, TokenNotPresent, InvalidParameter ("digest" not 32 bytes, "mechanism" not
    // for this key type), Busy (every session of the token busy for 30 s, or the token says
    // so), Internal (anything else, with the CKR name in the detail).
    std::vector<unsigned char> sign(const Login& login, std::string_view key_uri,
                                    Mechanism mechanism,
                                    std::span<const unsigned char> sha256_digest);
    // Re-enumerates slots (after a PC/SC insert/remove event). Existing Logins of tokens that
    // are still present stay valid.
    void refresh();

  private:
    std::unique_ptr<detail::ManagerState> state_;
};

}  // namespace hbsd::hsm
