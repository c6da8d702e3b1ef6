#include "protocol/hex.hpp"
#include "protocol/error.hpp"
#include "tests/support/catch.hpp"

#include <array>
#include <string>

using hbsd::sha256_hex;
using hbsd::to_hex;

TEST_CASE("hex: lowercase, two digits a byte, leading zeros kept") {
    const std::array<unsigned char, 6> atr{0x3b, 0x8f, 0x80, 0x01, 0x00, 0xff};
    CHECK(to_hex(atr) == "3b8f800100ff");
    CHECK(to_hex(std::span<const unsigned char>(atr.data(), 0)).empty());
}

TEST_CASE("hex: SHA-256 of text and of bytes (FIPS 180-2 test vectors)") {
    CHECK(sha256_hex(std::string_view("abc")) ==
          "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    CHECK(sha256_hex(std::string_view()) ==
          "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    const std::array<unsigned char, 3> abc{'a', 'b', 'c'};
    CHECK(sha256_hex(abc) == sha256_hex(std::string_view("abc")));
}

TEST_CASE("hex: an Internal error's reference is 12 lowercase hex digits") {
    const auto e = hbsd::Error::internal("why");
    const std::string ref(e.parameters().at("reference").as_string());
    CHECK(ref.size() == 12);
    CHECK(ref.find_first_not_of("0123456789abcdef") == std::string::npos);
}
