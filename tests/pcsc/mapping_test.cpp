// hsm/pcsc mapping: which PKCS#11 module drives the token in a reader (fast, no pcscd).
#include "hsm/pcsc/mapping.hpp"

#include <vector>

#include "hsm/pcsc/watcher.hpp"
#include "protocol/error.hpp"
#include "tests/support/catch.hpp"

using namespace hbsd;
using namespace hbsd::hsm::pcsc;

TEST_CASE("reader_matches: exact names and globs") {
    CHECK(reader_matches("Virtual PCD 00 00", "Virtual PCD 00 00"));
    CHECK_FALSE(reader_matches("Virtual PCD 00 00", "Virtual PCD 00 01"));
    CHECK_FALSE(reader_matches("Virtual PCD", "Virtual PCD 00 00"));  // exact means whole name
    CHECK(reader_matches("Virtual PCD*", "Virtual PCD 00 00"));
    CHECK(reader_matches("Virtual PCD 00 0?", "Virtual PCD 00 01"));
    CHECK_FALSE(reader_matches("Virtual PCD 00 0?", "Virtual PCD 00 010"));
    CHECK(reader_matches("*Shell Token*", "Gemalto USB Shell Token V2 (284C3E2B) 00 00"));
    CHECK(reader_matches("*", ""));
    CHECK(reader_matches("**a**", "xxaxx"));
    CHECK_FALSE(reader_matches("", "x"));
    CHECK(reader_matches("", ""));
    CHECK_FALSE(reader_matches("a*b", "a"));
    CHECK(reader_matches("a*b*c", "a-b-b-c"));
    CHECK_FALSE(reader_matches("a*b*c", "a-b-b-"));
    // Brackets and backslashes are plain characters (reader names contain parentheses).
    CHECK(reader_matches("ACS [x] (1)*", "ACS [x] (1) 00 00"));
    CHECK_FALSE(reader_matches("ACS [x]*", "ACS x 00 00"));
}

TEST_CASE("reader_matches stays fast on a pathological glob") {
    const std::string name(5000, 'a');
    const std::string pattern = "*a*a*a*a*a*a*a*a*a*a*b";
    CHECK_FALSE(reader_matches(pattern, name));
}

TEST_CASE("module_for: the most specific entry wins") {
    const std::vector<ReaderMapping> config = {
        {"Gemalto*", "", "safenet"},
        {"Gemalto USB Shell Token V2 (284C3E2B) 00 00", "", "gemalto-exact"},
        {"", "VGCA-SEAL-0001", "vgca"},
        {"Virtual PCD*", "SOFTHSM-7", "softhsm-in-vpcd"},
        {"Virtual PCD*", "", "softhsm"},
        {"*", "", "opensc"},
    };
    REQUIRE_NOTHROW(validate(config));

    // Exact beats glob, whatever the order.
    CHECK(module_for(config, "Gemalto USB Shell Token V2 (284C3E2B) 00 00") == "gemalto-exact");
    CHECK(module_for(config, "Gemalto USB Shell Token V2 (11111111) 00 00") == "safenet");
    // A serial beats any reader entry, and follows the token to another reader.
    CHECK(module_for(config, "Gemalto USB Shell Token V2 (284C3E2B) 00 00", "VGCA-SEAL-0001") ==
          "vgca");
    CHECK(module_for(config, "Bit4id miniLector 00 00", "VGCA-SEAL-0001") == "vgca");
    // Reader and serial together beat serial alone and reader alone.
    CHECK(module_for(config, "Virtual PCD 00 01", "SOFTHSM-7") == "softhsm-in-vpcd");
    CHECK(module_for(config, "Virtual PCD 00 01", "OTHER") == "softhsm");
    // Serial entries never match while the serial is unknown.
    CHECK(module_for(config, "Virtual PCD 00 01") == "softhsm");
    // Among equals, configuration order.
    CHECK(module_for(config, "Anything 00 00") == "opensc");
    const std::vector<ReaderMapping> two_globs = {{"A*", "", "first"}, {"*", "", "second"}};
    CHECK(module_for(two_globs, "AB") == "first");
    const std::vector<ReaderMapping> reversed = {{"*", "", "first"}, {"A*", "", "second"}};
    CHECK(module_for(reversed, "AB") == "first");
}

TEST_CASE("module_for: nothing configured or nothing matching") {
    CHECK_FALSE(module_for({}, "Virtual PCD 00 00").has_value());
    const std::vector<ReaderMapping> config = {{"Gemalto*", "", "safenet"}, {"", "S1", "vgca"}};
    CHECK_FALSE(module_for(config, "Virtual PCD 00 00").has_value());
    CHECK_FALSE(module_for(config, "Virtual PCD 00 00", "S2").has_value());
}

TEST_CASE("validate names the bad entry") {
    auto code_and_parameter = [](const std::vector<ReaderMapping>& config) {
        try {
            validate(config);
        } catch (const Error& e) {
            const auto* p = e.parameters().if_contains("parameter");
            return std::string(error_name(e.code())) + " " +
                   (p && p->is_string() ? std::string(p->as_string()) : std::string("?"));
        }
        return std::string("accepted");
    };
    CHECK(code_and_parameter({{"A*", "", "m"}, {"B*", "", ""}}) ==
          "org.varlink.service.InvalidParameter token_mapping[1].module");
    CHECK(code_and_parameter({{"", "", "m"}}) ==
          "org.varlink.service.InvalidParameter token_mapping[0].reader");
    CHECK(code_and_parameter({{"", "S", "m"}, {"R", "", "m"}}) == "accepted");
    // An entry validate() refuses never matches either.
    CHECK_FALSE(module_for(std::vector<ReaderMapping>{{"", "", "m"}}, "R").has_value());
}

// The ATR's hex is protocol/hex's to_hex (tests/protocol/hex_test.cpp).
TEST_CASE("event kinds") {
    CHECK(to_string(EventKind::reader_added) == "reader_added");
    CHECK(to_string(EventKind::reader_removed) == "reader_removed");
    CHECK(to_string(EventKind::card_inserted) == "card_inserted");
    CHECK(to_string(EventKind::card_removed) == "card_removed");
}

TEST_CASE("reader_for_token: the mapped reader holding a card, else the mapped empty one") {
    const std::vector<ReaderMapping> config = {
        {"hbsd Test PCD*", "", "softhsm"},
        {"", "SEAL-1", "vgca"},
        {"Gemalto*", "", "safenet"},
    };
    std::vector<ReaderState> readers = {
        {"Gemalto USB Shell Token V2 (1) 00 00", true, "3b7f"},
        {"hbsd Test PCD 00 00", false, ""},
        {"hbsd Test PCD 00 01", false, ""},
    };
    // Mapped but empty: the token is in that reader and not present.
    auto r = reader_for_token(config, readers, "softhsm");
    REQUIRE(r);
    CHECK(r->name == "hbsd Test PCD 00 00");
    CHECK_FALSE(r->present);
    // A card in the second slot: that one.
    readers[2] = {"hbsd Test PCD 00 01", true, "3b88"};
    r = reader_for_token(config, readers, "softhsm");
    REQUIRE(r);
    CHECK(r->name == "hbsd Test PCD 00 01");
    CHECK(r->present);
    CHECK(r->atr == "3b88");
    // A serial-mapped token is wherever a card is (the serial beats the reader globs).
    r = reader_for_token(config, readers, "vgca", "SEAL-1");
    REQUIRE(r);
    CHECK(r->name == "Gemalto USB Shell Token V2 (1) 00 00");
    CHECK_FALSE(reader_for_token(config, readers, "vgca", "OTHER").has_value());
    // A module no reader maps to: the token is not tied to a reader at all.
    CHECK_FALSE(reader_for_token(config, readers, "hsm-network").has_value());
    CHECK_FALSE(reader_for_token(config, {}, "softhsm").has_value());
}
