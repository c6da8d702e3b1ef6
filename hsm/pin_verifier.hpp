// "A person's PIN is their consent", while PKCS#11 keeps one login state per token for the
// whole process: once logged in, C_Login answers CKR_USER_ALREADY_LOGGED_IN without looking
// at the PIN, and libp11 0.4.12's PKCS11_login returns success for any PIN without calling
// the module at all. So a second Login to a logged-in token cannot be checked by the token.
//
// hsm/ therefore keeps, only while the token is logged in, a verifier of the PIN that logged
// it in: PBKDF2-HMAC-SHA256 over the PIN with a fresh random 16-byte salt. A later login
// presents its PIN, which is derived the same way and compared in constant time. Wrong PINs
// are counted; after TokenManagerOptions::max_wrong_pins_while_logged_in of them the token
// refuses further logins (PinLocked) until it has been logged out, so the verifier cannot be
// used as a guessing oracle that bypasses the token's own retry counter. The verifier is
// wiped when the last Login goes away. The PIN itself is never copied: it goes from the
// caller's buffer straight into C_Login or PBKDF2.
#pragma once

#include <array>
#include <string_view>

namespace hbsd::hsm {

class PinVerifier {
  public:
    explicit PinVerifier(std::string_view pin);
    PinVerifier(const PinVerifier&) = delete;
    PinVerifier& operator=(const PinVerifier&) = delete;
    ~PinVerifier();

    bool matches(std::string_view pin) const;

  private:
    std::array<unsigned char, 16> salt_{};
    std::array<unsigned char, 32> hash_{};
};

}  // namespace hbsd::hsm
