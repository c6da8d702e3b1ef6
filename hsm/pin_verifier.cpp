#include "hsm/pin_verifier.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "protocol/error.hpp"

namespace hbsd::hsm {

namespace {

// About 50 ms on a current CPU: cheap next to a token login, dear for a guesser.
constexpr int pbkdf2_iterations = 100'000;

void derive(std::string_view pin, const std::array<unsigned char, 16>& salt,
            std::array<unsigned char, 32>& out) {
    if (PKCS5_PBKDF2_HMAC(pin.data(), static_cast<int>(pin.size()), salt.data(),
                          static_cast<int>(salt.size()), pbkdf2_iterations, EVP_sha256(),
                          static_cast<int>(out.size()), out.data()) != 1)
        throw Error::internal("PBKDF2 failed");
}

}  // namespace

PinVerifier::PinVerifier(std::string_view pin) {
    if (RAND_bytes(salt_.data(), static_cast<int>(salt_.size())) != 1)
        throw Error::internal("RAND_bytes failed");
    derive(pin, salt_, hash_);
}

PinVerifier::~PinVerifier() {
    OPENSSL_cleanse(hash_.data(), hash_.size());
    OPENSSL_cleanse(salt_.data(), salt_.size());
}

bool PinVerifier::matches(std::string_view pin) const {
    std::array<unsigned char, 32> candidate{};
    derive(pin, salt_, candidate);
    const bool same = CRYPTO_memcmp(candidate.data(), hash_.data(), hash_.size()) == 0;
    OPENSSL_cleanse(candidate.data(), candidate.size());
    return same;
}

}  // namespace hbsd::hsm
