#include "protocol/hex.hpp"

#include <openssl/evp.h>

#include "protocol/error.hpp"

namespace hbsd {

std::string to_hex(std::span<const unsigned char> bytes) {
    static constexpr char kHex[] = "0123456789abcdef";
    std::string out;
    out.reserve(2 * bytes.size());
    for (unsigned char b : bytes) {
        out.push_back(kHex[b >> 4]);
        out.push_back(kHex[b & 0x0f]);
    }
    return out;
}

std::string sha256_hex(std::span<const unsigned char> bytes) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (EVP_Digest(bytes.data(), bytes.size(), md, &len, EVP_sha256(), nullptr) != 1)
        throw Error::internal("openssl: SHA-256 failed");
    return to_hex(std::span<const unsigned char>(md, len));
}

std::string sha256_hex(std::string_view text) {
    return sha256_hex(std::span(reinterpret_cast<const unsigned char*>(text.data()), text.size()));
}

}  // namespace hbsd
