// The PIN cache on its own (daemon/pin_cache.hpp): ttl from the typing, uid binding, the drops,
// the bound on entries, and the [pin_cache] config.
#include "daemon/pin_cache.hpp"
#include "daemon/config.hpp"
#include "tests/support/catch.hpp"

using namespace hbsd::daemon;
using namespace std::chrono_literals;

namespace {

PinCacheConfig on(unsigned ttl_s = 600, unsigned max_entries = 64) {
    return {true, ttl_s, max_entries};
}

PinCache::Token card(std::string uri = "pkcs11:token=card;serial=42", std::uint64_t inc = 7,
                     std::optional<std::string> reader = "Virtual PCD 00 00") {
    return {std::move(uri), "42", inc, std::move(reader)};
}

std::optional<std::string> pin_of(PinCache& c, uid_t uid, std::string_view token,
                                  PinCache::Clock::time_point now = PinCache::Clock::now()) {
    std::string pin;
    if (!c.find(uid, token, pin, now)) return std::nullopt;
    return pin;
}

}  // namespace

TEST_CASE("pin_cache: disabled remembers nothing") {
    PinCache c(PinCacheConfig{});
    CHECK(!c.enabled());
    CHECK(!c.remember(1000, card(), "pkcs11:token=card", "1234"));
    CHECK(!pin_of(c, 1000, "pkcs11:token=card"));
    CHECK(c.size() == 0);
}

TEST_CASE("pin_cache: found by the uid that typed it, by requested or canonical URI") {
    PinCache c(on());
    const auto t = card();
    REQUIRE(c.remember(1000, t, "pkcs11:token=card", "1234"));
    CHECK(pin_of(c, 1000, "pkcs11:token=card") == "1234");
    CHECK(pin_of(c, 1000, t.uri) == "1234");
    std::string pin;
    const auto found = c.find(1000, t.uri, pin);
    REQUIRE(found);
    CHECK(found->serial == "42");
    CHECK(found->incarnation == 7);
    // Never another uid's, not even root's.
    CHECK(!pin_of(c, 1001, t.uri));
    CHECK(!pin_of(c, 0, t.uri));
    CHECK(!pin_of(c, 1000, "pkcs11:token=other"));
    // A new PIN for the same pair replaces the old one.
    REQUIRE(c.remember(1000, t, "pkcs11:token=card", "5678"));
    CHECK(c.size() == 1);
    CHECK(pin_of(c, 1000, t.uri) == "5678");
}

TEST_CASE("pin_cache: the ttl runs from the typing, not from the last use") {
    PinCache c(on(60));
    const auto t0 = PinCache::Clock::now();
    REQUIRE(c.remember(1000, card(), "x", "1234", std::nullopt, t0));
    CHECK(pin_of(c, 1000, "x", t0 + 30s) == "1234");
    CHECK(pin_of(c, 1000, "x", t0 + 59s) == "1234");  // a use does not extend it
    CHECK(!pin_of(c, 1000, "x", t0 + 60s));
    CHECK(c.size() == 0);  // dropped on the way
    REQUIRE(c.remember(1000, card(), "x", "1234", std::nullopt, t0));
    CHECK(c.sweep(t0 + 10s) == 0);
    CHECK(c.sweep(t0 + 61s) == 1);
    CHECK(c.size() == 0);
}

TEST_CASE("pin_cache: drops by uid, token, incarnation and reader") {
    PinCache c(on());
    const auto a = card("pkcs11:token=a", 1, "R1");
    const auto b = card("pkcs11:token=b", 2, "R2");
    auto fill = [&] {
        c.clear();
        c.remember(1000, a, "a", "1111");
        c.remember(1001, a, "a", "2222");
        c.remember(1000, b, "b", "3333");
    };
    fill();
    CHECK(c.drop(1000, "a") == 1);  // by the requested name
    CHECK(pin_of(c, 1001, "a") == "2222");
    CHECK(c.drop(1000) == 1);
    CHECK(c.size() == 1);
    fill();
    CHECK(c.drop_token("pkcs11:token=a") == 2);
    CHECK(pin_of(c, 1000, "b") == "3333");
    fill();
    CHECK(c.drop_other_incarnations("pkcs11:token=a", 1) == 0);
    CHECK(c.drop_other_incarnations("pkcs11:token=a", 9) == 2);
    fill();
    CHECK(c.drop_incarnation("pkcs11:token=b", 3) == 0);
    CHECK(c.drop_incarnation("pkcs11:token=b", 2) == 1);
    fill();
    CHECK(c.drop_reader("R2") == 1);
    CHECK(c.drop_reader("R1") == 2);
    CHECK(c.size() == 0);
}

TEST_CASE("pin_cache: bounded; the PIN typed longest ago goes first; long PINs are not kept") {
    PinCache c(on(600, 3));
    const auto t0 = PinCache::Clock::now();
    for (int i = 0; i < 3; ++i)
        REQUIRE(c.remember(1000 + i, card(), "x", "pin" + std::to_string(i), std::nullopt,
                           t0 + i * 1s));
    REQUIRE(c.remember(2000, card(), "x", "new", std::nullopt, t0 + 5s));
    CHECK(c.size() == 3);
    CHECK(!pin_of(c, 1000, "x", t0 + 6s));
    CHECK(pin_of(c, 1001, "x", t0 + 6s) == "pin1");
    CHECK(pin_of(c, 2000, "x", t0 + 6s) == "new");
    // Slots are reused without leftovers of a longer PIN.
    c.clear();
    REQUIRE(c.remember(1, card(), "x", "12345678"));
    c.clear();
    REQUIRE(c.remember(1, card(), "x", "99"));
    CHECK(pin_of(c, 1, "x") == "99");
    CHECK(!c.remember(1, card(), "x", std::string(PinCache::kMaxPinBytes + 1, '1')));
    CHECK(!c.remember(1, card(), "x", ""));
}

TEST_CASE("pin_cache: [pin_cache] config, defaults and bounds with file:line") {
    CHECK(!parse_config("", "t.toml").pin_cache.enabled);
    CHECK(parse_config("", "t.toml").pin_cache.ttl_s == 600);
    const auto c =
        parse_config("[pin_cache]\nenabled = true\nttl_s = 300\nmax_entries = 8\n", "t.toml");
    CHECK(c.pin_cache.enabled);
    CHECK(c.pin_cache.ttl_s == 300);
    CHECK(c.pin_cache.max_entries == 8);
    auto error = [](const std::string& text) {
        try {
            parse_config(text, "t.toml");
        } catch (const ConfigError& e) {
            return std::string(e.what());
        }
        return std::string("no error");
    };
    CHECK(error("[pin_cache]\nttl_s = 86401\n").rfind("t.toml:2:", 0) == 0);
    CHECK(error("[pin_cache]\nttl_s = 0\n").find("between 1 and 86400") != std::string::npos);
    CHECK(error("[pin_cache]\nmax_entries = 5000\n").rfind("t.toml:2:", 0) == 0);
    CHECK(error("[pin_cache]\nenabled = 1\n").find("true or false") != std::string::npos);
    CHECK(error("[pin_cache]\nttl = 5\n").find("unknown key 'ttl'") != std::string::npos);
}

TEST_CASE("pin_cache: a card removed between the login and remember() is not remembered") {
    PinCache c(on());
    const auto before = c.reader_events();
    c.drop_reader("Virtual PCD 00 00");  // nothing cached yet: nothing to drop, but counted
    CHECK(!c.remember(1000, card(), "x", "1234", before));
    CHECK(c.size() == 0);
    // A token in no reader (an HSM) is not concerned; a fresh count is fine.
    CHECK(c.remember(1000, card("pkcs11:token=hsm", 1, std::nullopt), "h", "1234", before));
    CHECK(c.remember(1000, card(), "x", "1234", c.reader_events()));
    CHECK(c.holds(1000, card().uri, 7));
    CHECK(!c.holds(1000, card().uri, 8));
    CHECK(!c.holds(1001, card().uri, 7));
}
