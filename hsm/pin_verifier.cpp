#include "hsm/pin_verifier.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <algorithm>
#include <cstdint>

#include "protocol/error.hpp"

namespace hbsd::hsm {

namespace {

// About 50 ms on a current CPU: cheap next to a token login, dear for a guesser.
constexpr int pbkdf2_iterations = 100'000;

void derive(std::string_view pin, const std::array<unsigned char, 16>& salt,
            std::array<unsigned char, 32>& out) {
    // HMAC pads short keys with zero bytes, so "1234" and "1234\0" would be the same key;
    // the PIN's length goes into the salt to keep them apart.
    std::array<unsigned char, 24> salted{};
    std::copy(salt.begin(), salt.end(), salted.begin());
    for (int i = 0; i < 8; ++i)
        salted[16 + i] = static_cast<unsigned char>(static_cast<uint64_t>(pin.size()) >> (8 * i));
    if (PKCS5_PBKDF2_HMAC(pin.data(), static_cast<int>(pin.size()), salted.data(),
                          static_cast<int>(salted.size()), pbkdf2_iterations, EVP_sha256(),
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
