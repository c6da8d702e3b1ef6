// hsm/ against real SoftHSM2 tokens (ctest label "hsm"); faults that SoftHSM2 cannot produce
// (locked PIN, final try, removal, device errors, slow signing) go through pkcs11-fault.
#include <p11-kit/uri.h>

#include <algorithm>
#include <atomic>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include "hsm/token_manager.hpp"
#include "hsm/uri.hpp"
#include "tests/hsm/support.hpp"
#include "tests/support/catch.hpp"

using namespace hbsd;
using namespace hbsd::hsm;
using namespace hbsd::hsm::test;

namespace {

const std::vector<unsigned char> digest = sha256("Hoc ba so - ban ghi 94000123-2024-0001");

TokenInfo the_token(TokenManager& tm) {
    auto tokens = tm.list_tokens();
    REQUIRE(tokens.size() == 1);
    return tokens.front();
}

std::string key_uri(TokenManager& tm, const std::string& token_uri, const std::string& label) {
    for (auto& k : tm.list_keys(token_uri))
        if (k.label == label) return k.uri;
    FAIL("no key " << label);
    return {};
}

std::string param(const Error& e, const char* name) {
    const auto* v = e.parameters().if_contains(name);
    if (!v) return "<absent>";
    if (v->is_int64()) return std::to_string(v->as_int64());
    if (v->is_string()) return std::string(v->as_string());
    return "<other>";
}

int max_in_flight(const std::filesystem::path& log, const std::string& function) {
    std::ifstream in(log);
    std::string line, name, rv;
    int peak = 0;
    while (std::getline(in, line)) {
        std::istringstream fields(line);
        int flight = 0;
        if (fields >> name >> rv >> flight && name == function) peak = std::max(peak, flight);
    }
    return peak;
}

// The mechanisms C_SignInit was called with, in order.
std::vector<std::string> sign_mechanisms(const std::filesystem::path& log) {
    std::ifstream in(log);
    std::string line;
    std::vector<std::string> out;
    while (std::getline(in, line))
        if (line.rfind("C_SignInit 0x0 ", 0) == 0) out.push_back(line.substr(line.rfind(' ') + 1));
    return out;
}

}  // namespace

TEST_CASE("list_tokens names the SoftHSM2 token by a pkcs11 URI", "[hsm]") {
    SoftHsmToken token;
    TokenManager tm({SoftHsmToken::softhsm()});
    const TokenInfo t = the_token(tm);
    CHECK(t.label == "hbsd-test");
    CHECK(t.manufacturer == "SoftHSM project");
    CHECK(t.model == "SoftHSM v2");
    CHECK(t.serial.size() == 16);
    CHECK(t.present);
    CHECK_FALSE(t.logged_in);
    CHECK_FALSE(t.reader.has_value());  // SoftHSM2 slots are not removable here
    CHECK(t.module == "softhsm");
    CHECK(t.uri.rfind("pkcs11:", 0) == 0);
    CHECK(t.uri.find("token=hbsd-test") != std::string::npos);
    CHECK(t.uri.find("serial=" + t.serial) != std::string::npos);
    CHECK(t.uri.find("model=SoftHSM%20v2") != std::string::npos);
    CHECK(t.uri.find("manufacturer=SoftHSM%20project") != std::string::npos);
}

TEST_CASE("list_keys shows every key with its certificate without a login", "[hsm]") {
    SoftHsmToken token;
    TokenManager tm({SoftHsmToken::softhsm()});
    const TokenInfo t = the_token(tm);
    const auto keys = tm.list_keys(t.uri);
    const auto everyone = people();
    REQUIRE(keys.size() == everyone.size());
    for (const auto& person : everyone) {
        INFO(person.name);
        auto it =
            std::ranges::find_if(keys, [&](const KeyInfo& k) { return k.label == person.name; });
        REQUIRE(it != keys.end());
        if (person.key_type == "rsa") {
            CHECK(it->algorithm == KeyAlgorithm::rsa);
            CHECK(it->bits == 2048);
        } else {
            CHECK(it->algorithm == KeyAlgorithm::ec);
            CHECK(it->bits == (person.key_type == "p256" ? 256 : 384));
        }
        const auto der = certificate_der(person.name);
        CHECK(it->certificate_der == der);
        REQUIRE(it->fingerprint.has_value());
        CHECK(*it->fingerprint == sha256_hex(der));
        REQUIRE(it->certificate_pem.has_value());
        CHECK(it->certificate_pem->rfind("-----BEGIN CERTIFICATE-----", 0) == 0);
        char id[8];
        std::snprintf(id, sizeof id, "id=%%%02X", person.id);
        CHECK(it->uri.find(id) != std::string::npos);
        CHECK(it->uri.find("object=" + person.name) != std::string::npos);
        CHECK(it->uri.find("type=private") != std::string::npos);
        CHECK(it->uri.find("token=hbsd-test") != std::string::npos);
    }
}

TEST_CASE("login with the right PIN and logout when the last Login goes", "[hsm]") {
    SoftHsmToken token;
    TokenManager tm({SoftHsmToken::softhsm()});
    const TokenInfo t = the_token(tm);
    {
        Login login = tm.login(t.uri, "1234");
        CHECK(static_cast<bool>(login));
        CHECK(login.token_uri() == t.uri);
        CHECK(the_token(tm).logged_in);
        Login second = tm.login(t.uri, "1234");
        Login moved = std::move(login);
        CHECK_FALSE(static_cast<bool>(login));  // NOLINT(bugprone-use-after-move)
        CHECK(the_token(tm).logged_in);
        // A moved-from Login signs nothing.
        auto e = error_of(
            [&] { tm.sign(login, key_uri(tm, t.uri, "ht"), Mechanism::rsa_pkcs1_sha256, digest); });
        REQUIRE(e);
        CHECK(e->code() == Errc::Internal);
    }
    CHECK_FALSE(the_token(tm).logged_in);
    // Logged out for real: the token no longer accepts the private key.
    Login again = tm.login(t.uri, "1234");
    CHECK(the_token(tm).logged_in);
}

TEST_CASE("a wrong PIN is PinIncorrect and SoftHSM2 gives no retry count", "[hsm]") {
    SoftHsmToken token;
    TokenManager tm({SoftHsmToken::softhsm()});
    const TokenInfo t = the_token(tm);
    for (int i = 0; i < 3; ++i) {
        auto e = error_of([&] { tm.login(t.uri, "9999"); });
        REQUIRE(e);
        CHECK(e->code() == Errc::PinIncorrect);
        // SoftHSM2 2.6 only raises CKF_USER_PIN_COUNT_LOW, which carries no number.
        CHECK(param(*e, "retries_left") == "<absent>");
        // The PIN goes nowhere near an error.
        CHECK(std::string(e->what()).find("9999") == std::string::npos);
        CHECK(e->detail().find("9999") == std::string::npos);
    }
    CHECK_FALSE(the_token(tm).logged_in);
    CHECK_NOTHROW(tm.login(t.uri, "1234"));
}

TEST_CASE("a locked PIN is PinLocked (fault module)", "[hsm]") {
    SoftHsmToken token;
    TokenManager tm({token.fault_module()});
    const TokenInfo t = the_token(tm);

    token.set_faults("login=CKR_PIN_LOCKED");
    auto e = error_of([&] { tm.login(t.uri, "1234"); });
    REQUIRE(e);
    CHECK(e->code() == Errc::PinLocked);

    // A token that says it is locked is not even tried (a try could cost nothing, but the
    // answer would be the same and some tokens count it).
    token.set_faults("token_flags=pin_locked");
    e = error_of([&] { tm.login(t.uri, "1234"); });
    REQUIRE(e);
    CHECK(e->code() == Errc::PinLocked);

    token.set_faults("");
    CHECK_NOTHROW(tm.login(t.uri, "1234"));
}

TEST_CASE("the final try is reported as retries_left 1 (fault module)", "[hsm]") {
    SoftHsmToken token;
    TokenManager tm({token.fault_module()});
    const TokenInfo t = the_token(tm);

    token.set_faults("token_flags=pin_final_try");
    auto e = error_of([&] { tm.login(t.uri, "0000"); });
    REQUIRE(e);
    CHECK(e->code() == Errc::PinIncorrect);
    CHECK(param(*e, "retries_left") == "1");

    token.set_faults("token_flags=pin_count_low");
    e = error_of([&] { tm.login(t.uri, "0000"); });
    REQUIRE(e);
    CHECK(e->code() == Errc::PinIncorrect);
    CHECK(param(*e, "retries_left") == "<absent>");

    // A login that locks the PIN reports PinLocked even when the module says PIN_INCORRECT.
    token.set_faults("token_flags=pin_locked\nlogin=CKR_PIN_INCORRECT");
    e = error_of([&] { tm.login(t.uri, "0000"); });
    REQUIRE(e);
    CHECK(e->code() == Errc::PinLocked);
}

TEST_CASE("unknown or malformed or ambiguous token URIs are TokenNotFound", "[hsm]") {
    SoftHsmToken token;
    token.add_empty_token("second", "5678");
    TokenManager tm({SoftHsmToken::softhsm()});
    const auto tokens = tm.list_tokens();
    REQUIRE(tokens.size() == 2);
    const std::string uri =
        std::ranges::find_if(tokens, [](auto& t) { return t.label == "hbsd-test"; })->uri;

    for (std::string bad :
         {"pkcs11:token=nope", "pkcs11:model=SoftHSM%20v2",  // both tokens
          "pkcs11:serial=0000000000000000;token=hbsd-test", "not a uri",
          "pkcs11:token=hbsd-test;frobnicate=1", "pkcs11:library-description=Other"}) {
        INFO(bad);
        auto e = error_of([&] { tm.list_keys(bad); });
        REQUIRE(e);
        CHECK(e->code() == Errc::TokenNotFound);
        e = error_of([&] { tm.login(bad, "1234"); });
        REQUIRE(e);
        CHECK(e->code() == Errc::TokenNotFound);
        CHECK(param(*e, "token") == bad);
    }
    // Any URI that names exactly one token will do.
    CHECK(tm.list_keys("pkcs11:token=hbsd-test").size() == people().size());
    CHECK(tm.list_keys("pkcs11:token=second").empty());
    CHECK(tm.list_keys(uri).size() == people().size());
    CHECK_NOTHROW(tm.login("pkcs11:token=second", "5678"));
}

TEST_CASE("a token that is gone is TokenNotPresent (fault module)", "[hsm]") {
    SoftHsmToken token;
    TokenManager tm({token.fault_module()});
    const TokenInfo t = the_token(tm);
    Login login = tm.login(t.uri, "1234");
    const std::string key = key_uri(tm, t.uri, "gvbm-TOAN");
    CHECK_NOTHROW(tm.sign(login, key, Mechanism::rsa_pkcs1_sha256, digest));

    token.set_faults("token_present=0");
    auto e = error_of([&] { tm.sign(login, key, Mechanism::rsa_pkcs1_sha256, digest); });
    REQUIRE(e);
    CHECK(e->code() == Errc::TokenNotPresent);
    CHECK(param(*e, "token") == t.uri);
    e = error_of([&] { tm.login(t.uri, "1234"); });
    REQUIRE(e);
    CHECK(e->code() == Errc::TokenNotPresent);
    e = error_of([&] { tm.list_keys(t.uri); });
    REQUIRE(e);
    CHECK(e->code() == Errc::TokenNotPresent);
    const auto tokens = tm.list_tokens();
    REQUIRE(tokens.size() == 1);
    CHECK(tokens[0].uri == t.uri);
    CHECK_FALSE(tokens[0].present);
    CHECK_FALSE(tokens[0].logged_in);
    // The Login stays dead: the token may have gone through other hands meanwhile.
    token.set_faults("");
    e = error_of([&] { tm.sign(login, key, Mechanism::rsa_pkcs1_sha256, digest); });
    REQUIRE(e);
    CHECK(e->code() == Errc::TokenNotPresent);
}

TEST_CASE(
    "signatures failing side by side on a restarting HSM are all TokenNotPresent (fault module)",
    "[hsm]") {
    // The first failing call finds the token gone; one failing just after must say the same
    // rather than the dying call's CKR_DEVICE_ERROR (which is Internal).
    SoftHsmToken token;
    TokenManager tm({token.fault_module()});
    const TokenInfo t = the_token(tm);
    Login login = tm.login(t.uri, "1234");
    const std::string key = key_uri(tm, t.uri, "gvbm-TOAN");
    auto sign = [&] { tm.sign(login, key, Mechanism::rsa_pkcs1_sha256, digest); };
    {
        // Two sessions in the pool, so that neither call below opens one.
        token.set_faults("signinit_delay_ms=100\n");
        std::thread a(sign), b(sign);
        a.join();
        b.join();
    }
    token.set_faults("signinit_delay_ms=300\nrestart_needed=CKR_DEVICE_ERROR,1\n");
    std::optional<Error> first, second;
    std::thread a([&] { first = error_of(sign); });
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    std::thread b([&] { second = error_of(sign); });  // fails 100 ms after the first
    a.join();
    b.join();
    REQUIRE(first);
    REQUIRE(second);
    CHECK(first->code() == Errc::TokenNotPresent);
    CHECK(second->code() == Errc::TokenNotPresent);
}

TEST_CASE("a token taken out and put back needs a new login (fault module)", "[hsm]") {
    SoftHsmToken token;
    TokenManager tm({token.fault_module()});
    const TokenInfo t = the_token(tm);
    const std::string key = key_uri(tm, t.uri, "truong");
    Login old = tm.login(t.uri, "1234");
    CHECK(tm.sign(old, key, Mechanism::ecdsa_sha256, digest).size() == 64);

    token.set_faults("token_present=0");
    tm.refresh();
    CHECK_FALSE(the_token(tm).present);
    token.set_faults("");
    tm.refresh();
    const TokenInfo back = the_token(tm);
    CHECK(back.present);
    CHECK(back.uri == t.uri);
    // hsm/ logged the token out when it went: nobody is logged in behind the old Login.
    CHECK_FALSE(back.logged_in);
    auto e = error_of([&] { tm.sign(old, key, Mechanism::ecdsa_sha256, digest); });
    REQUIRE(e);
    CHECK(e->code() == Errc::TokenNotPresent);
    e = error_of([&] { tm.login(t.uri, "0000"); });
    REQUIRE(e);
    CHECK(e->code() == Errc::PinIncorrect);

    Login fresh = tm.login(t.uri, "1234");
    CHECK(verify("truong", Mechanism::ecdsa_sha256, digest,
                 tm.sign(fresh, key, Mechanism::ecdsa_sha256, digest)));
    { Login gone = std::move(old); }  // must not log out the new login
    CHECK(the_token(tm).logged_in);
    CHECK(verify("truong", Mechanism::ecdsa_sha256, digest,
                 tm.sign(fresh, key, Mechanism::ecdsa_sha256, digest)));
}

TEST_CASE("tokens coming and going leave the logins of other tokens working (fault module)",
          "[hsm]") {
    SoftHsmToken token;
    token.add_token("second", "5678");
    TokenManager tm({token.fault_module()});
    REQUIRE(tm.list_tokens().size() == 2);
    const std::string first_key = "pkcs11:token=hbsd-test;object=gvcn";
    const std::string second_key = "pkcs11:token=second;object=extra-p384";
    auto first = std::make_unique<Login>(tm.login("pkcs11:token=hbsd-test", "1234"));
    auto second = std::make_unique<Login>(tm.login("pkcs11:token=second", "5678"));
    CHECK(verify("gvcn", Mechanism::rsa_pkcs1_sha256, digest,
                 tm.sign(*first, first_key, Mechanism::rsa_pkcs1_sha256, digest)));

    token.set_faults("token_absent=second");
    tm.refresh();
    auto e = error_of([&] { tm.sign(*second, second_key, Mechanism::ecdsa_sha256, digest); });
    REQUIRE(e);
    CHECK(e->code() == Errc::TokenNotPresent);
    CHECK(verify("gvcn", Mechanism::rsa_pkcs1_sha256, digest,
                 tm.sign(*first, first_key, Mechanism::rsa_pkcs1_sha256, digest)));

    // Back again: libp11's slot list is rebuilt while hbsd-test stays logged in.
    token.set_faults("");
    const auto tokens = tm.list_tokens();
    REQUIRE(tokens.size() == 2);
    CHECK(std::ranges::all_of(tokens, [](auto& t) { return t.present; }));
    CHECK(verify("gvcn", Mechanism::rsa_pkcs1_sha256, digest,
                 tm.sign(*first, first_key, Mechanism::rsa_pkcs1_sha256, digest)));
    second = std::make_unique<Login>(tm.login("pkcs11:token=second", "5678"));
    CHECK(verify("extra-p384", Mechanism::ecdsa_sha256, digest,
                 tm.sign(*second, second_key, Mechanism::ecdsa_sha256, digest)));

    // The last logout releases the old slot list (closing its sessions); both tokens work
    // again afterwards with fresh sessions.
    first.reset();
    second.reset();
    Login again = tm.login("pkcs11:token=hbsd-test", "1234");
    CHECK(verify("gvcn", Mechanism::rsa_pkcs1_sha256, digest,
                 tm.sign(again, first_key, Mechanism::rsa_pkcs1_sha256, digest)));
    Login other = tm.login("pkcs11:token=second", "5678");
    CHECK(verify("extra-p384", Mechanism::ecdsa_sha256, digest,
                 tm.sign(other, second_key, Mechanism::ecdsa_sha256, digest)));
}

TEST_CASE("readers - a removable slot names its reader and an empty one is listed (fault module)",
          "[hsm]") {
    SoftHsmToken token;
    {
        // SoftHSM2 marks its slots removable on request; they then stand in for PC/SC readers.
        const auto conf = token.dir() / "softhsm2.conf";
        std::ifstream in(conf);
        std::stringstream text;
        text << in.rdbuf();
        std::string s = text.str();
        s.replace(s.find("slots.removable = false"), 23, "slots.removable = true");
        std::ofstream(conf) << s;
    }
    // The free slot's uninitialised token (label blank) plays a reader without a card.
    token.set_faults("token_absent=");
    TokenManager tm({token.fault_module()});
    const auto tokens = tm.list_tokens();
    REQUIRE(tokens.size() == 2);
    const auto card = std::ranges::find_if(tokens, [](auto& t) { return t.present; });
    const auto empty = std::ranges::find_if(tokens, [](auto& t) { return !t.present; });
    REQUIRE(card != tokens.end());
    REQUIRE(empty != tokens.end());
    REQUIRE(card->reader.has_value());
    CHECK(card->reader->rfind("SoftHSM slot ID 0x", 0) == 0);
    CHECK(card->label == "hbsd-test");
    REQUIRE(empty->reader.has_value());
    CHECK(empty->label.empty());
    CHECK(empty->uri.find("slot-id=") != std::string::npos);
    CHECK(empty->uri.find("token=") == std::string::npos);

    auto e = error_of([&] { tm.login(empty->uri, "1234"); });
    REQUIRE(e);
    CHECK(e->code() == Errc::TokenNotPresent);
    // A slot URI names the token in that slot.
    const unsigned long id = std::stoul(card->reader->substr(18), nullptr, 16);
    Login login = tm.login("pkcs11:slot-id=" + std::to_string(id), "1234");
    CHECK(login.token_uri() == card->uri);
    e = error_of([&] { tm.login("pkcs11:slot-id=" + std::to_string(id + 1), "1234"); });
    REQUIRE(e);
    CHECK(e->code() == Errc::TokenNotFound);
}

TEST_CASE("two modules load side by side - SoftHSM2 and OpenSC with or without readers", "[hsm]") {
    SoftHsmToken token;
    // OpenSC with no reader has no slot at all, which libp11 0.4.12 cannot enumerate.
    TokenManager tm({SoftHsmToken::softhsm(), {"opensc", HBSD_OPENSC_MODULE}});
    const auto tokens = tm.list_tokens();
    const auto ours = std::ranges::find_if(tokens, [](auto& t) { return t.label == "hbsd-test"; });
    REQUIRE(ours != tokens.end());
    CHECK(ours->module == "softhsm");
    for (const auto& t : tokens)
        if (t.module == "opensc") CHECK(t.reader.has_value());
    Login login = tm.login(ours->uri, "1234");
    CHECK(verify("gvbm-GDDP", Mechanism::rsa_pkcs1_sha256, digest,
                 tm.sign(login, "pkcs11:token=hbsd-test;object=gvbm-GDDP",
                         Mechanism::rsa_pkcs1_sha256, digest)));
}

TEST_CASE("a key that wants a PIN per signature fails without prompting", "[hsm]") {
    SoftHsmToken token;
    token.add_always_authenticate_key("per-signature", "99");
    TokenManager tm({token.fault_module()});
    const TokenInfo t = the_token(tm);
    Login login = tm.login(t.uri, "1234");
    const KeyInfo k = tm.find_key(login, "pkcs11:token=hbsd-test;object=per-signature");
    CHECK(k.algorithm == KeyAlgorithm::ec);
    CHECK_FALSE(k.fingerprint.has_value());
    // libp11 would ask its UI - by default the terminal - for the key's PIN.
    auto e = error_of([&] { tm.sign(login, k.uri, Mechanism::ecdsa_sha256, digest); });
    REQUIRE(e);
    CHECK(e->code() == Errc::Internal);
    CHECK(e->detail().find("CKA_ALWAYS_AUTHENTICATE") != std::string::npos);
    // The sessions that saw the failed attempt still sign with other keys.
    for (int i = 0; i < 20; ++i)
        CHECK(verify("truong", Mechanism::ecdsa_sha256, digest,
                     tm.sign(login, "pkcs11:token=hbsd-test;object=truong", Mechanism::ecdsa_sha256,
                             digest)));
}

TEST_CASE("a module configured twice is refused", "[hsm]") {
    SoftHsmToken token;
    auto e = error_of([&] {
        TokenManager tm({SoftHsmToken::softhsm(), {"again", SoftHsmToken::softhsm().path}});
    });
    REQUIRE(e);
    CHECK(e->code() == Errc::Internal);
    e = error_of([&] {
        TokenManager tm(std::vector<ModuleConfig>{{"nothing", "/nonexistent/module.so"}});
    });
    REQUIRE(e);
    CHECK(e->code() == Errc::Internal);
}

TEST_CASE("a failing C_OpenSession is an error and not a hang inside libp11 (fault module)",
          "[hsm]") {
    SoftHsmToken token;
    TokenManager tm({token.fault_module()});
    const TokenInfo t = the_token(tm);
    Login login = tm.login(t.uri, "1234");
    const std::string key = "pkcs11:token=hbsd-test;object=gvbm-LSDL";
    // libp11 holds no session yet: it would have to open one, and 0.4.12 waits for ever when
    // that fails. hsm/ probes first.
    token.set_faults("open_session=CKR_SESSION_COUNT");
    auto e = error_of([&] { tm.list_keys(t.uri); });
    REQUIRE(e);
    CHECK(e->code() == Errc::Busy);
    e = error_of([&] { tm.sign(login, key, Mechanism::rsa_pkcs1_sha256, digest); });
    REQUIRE(e);
    CHECK(e->code() == Errc::Busy);
    token.set_faults("open_session=CKR_DEVICE_ERROR");
    e = error_of([&] { tm.sign(login, key, Mechanism::rsa_pkcs1_sha256, digest); });
    REQUIRE(e);
    CHECK(e->code() == Errc::Internal);

    token.set_faults("");
    CHECK(verify("gvbm-LSDL", Mechanism::rsa_pkcs1_sha256, digest,
                 tm.sign(login, key, Mechanism::rsa_pkcs1_sha256, digest)));
    // Now libp11 has a session to reuse, and one signature at a time needs no other.
    token.set_faults("open_session=CKR_SESSION_COUNT");
    CHECK(verify("gvbm-LSDL", Mechanism::rsa_pkcs1_sha256, digest,
                 tm.sign(login, key, Mechanism::rsa_pkcs1_sha256, digest)));
}

TEST_CASE("device errors while signing map to the contract's errors (fault module)", "[hsm]") {
    SoftHsmToken token;
    TokenManager tm({token.fault_module()});
    const TokenInfo t = the_token(tm);
    Login login = tm.login(t.uri, "1234");
    const std::string key = key_uri(tm, t.uri, "ht");

    token.set_faults("sign=CKR_DEVICE_ERROR");
    auto e = error_of([&] { tm.sign(login, key, Mechanism::rsa_pkcs1_sha256, digest); });
    REQUIRE(e);
    CHECK(e->code() == Errc::Internal);
    CHECK(e->detail().find("CKR_DEVICE_ERROR") != std::string::npos);

    token.set_faults("sign=CKR_KEY_HANDLE_INVALID");
    e = error_of([&] { tm.sign(login, key, Mechanism::rsa_pkcs1_sha256, digest); });
    REQUIRE(e);
    CHECK(e->code() == Errc::KeyNotFound);

    token.set_faults("");
    CHECK_NOTHROW(tm.sign(login, key, Mechanism::rsa_pkcs1_sha256, digest));

    // A session left with an operation active: hsm/ drops libp11's pooled sessions.
    token.set_faults("sign=CKR_OPERATION_ACTIVE");
    e = error_of([&] { tm.sign(login, key, Mechanism::rsa_pkcs1_sha256, digest); });
    REQUIRE(e);
    CHECK(e->code() == Errc::Internal);
    token.set_faults("");
    for (int i = 0; i < 3; ++i)
        CHECK(verify("ht", Mechanism::rsa_pkcs1_sha256, digest,
                     tm.sign(login, key, Mechanism::rsa_pkcs1_sha256, digest)));

    token.set_faults("sign=CKR_DEVICE_REMOVED");
    e = error_of([&] { tm.sign(login, key, Mechanism::rsa_pkcs1_sha256, digest); });
    REQUIRE(e);
    CHECK(e->code() == Errc::TokenNotPresent);
}

TEST_CASE("unknown or ambiguous or foreign key URIs are KeyNotFound", "[hsm]") {
    SoftHsmToken token;
    token.add_empty_token("second", "5678");
    TokenManager tm({SoftHsmToken::softhsm()});
    const auto tokens = tm.list_tokens();
    const std::string uri =
        std::ranges::find_if(tokens, [](auto& t) { return t.label == "hbsd-test"; })->uri;
    Login login = tm.login(uri, "1234");
    for (std::string bad : {"pkcs11:token=hbsd-test;object=nobody;type=private",
                            "pkcs11:token=hbsd-test;type=private",  // all 16 keys
                            "pkcs11:token=second;object=ht",        // another token
                            "pkcs11:token=hbsd-test;object=ht;type=cert",
                            "pkcs11:token=hbsd-test;id=%FF", "pkcs11:object=ht;bogus=1", "ht"}) {
        INFO(bad);
        auto e = error_of([&] { tm.find_key(login, bad); });
        REQUIRE(e);
        CHECK(e->code() == Errc::KeyNotFound);
        CHECK(param(*e, "key") == bad);
        e = error_of([&] { tm.sign(login, bad, Mechanism::rsa_pkcs1_sha256, digest); });
        REQUIRE(e);
        CHECK(e->code() == Errc::KeyNotFound);
    }
}

TEST_CASE("signatures of every mechanism verify against the certificate", "[hsm]") {
    SoftHsmToken token;
    TokenManager tm({SoftHsmToken::softhsm()});
    const TokenInfo t = the_token(tm);
    Login login = tm.login(t.uri, "1234");
    auto flipped = [](std::vector<unsigned char> d, size_t at) {
        d[at] ^= 0x80;
        return d;
    };

    // RSA PKCS#1 v1.5 is deterministic: it must equal the signature made from the key file.
    auto sig = tm.sign(login, key_uri(tm, t.uri, "gvbm-TOAN"), Mechanism::rsa_pkcs1_sha256, digest);
    CHECK(sig.size() == 256);
    CHECK(verify("gvbm-TOAN", Mechanism::rsa_pkcs1_sha256, digest, sig));
    CHECK(sig == reference_pkcs1_signature("gvbm-TOAN", digest));
    CHECK_FALSE(verify("gvcn", Mechanism::rsa_pkcs1_sha256, digest, sig));
    CHECK_FALSE(verify("gvbm-TOAN", Mechanism::rsa_pkcs1_sha256, flipped(digest, 0), sig));

    // RSA-PSS is randomised.
    sig = tm.sign(login, key_uri(tm, t.uri, "ht"), Mechanism::rsa_pss_sha256, digest);
    CHECK(sig.size() == 256);
    CHECK(verify("ht", Mechanism::rsa_pss_sha256, digest, sig));
    CHECK_FALSE(verify("ht", Mechanism::rsa_pkcs1_sha256, digest, sig));
    CHECK(tm.sign(login, key_uri(tm, t.uri, "ht"), Mechanism::rsa_pss_sha256, digest) != sig);

    // ECDSA as r||s, each half the size of the curve.
    sig = tm.sign(login, key_uri(tm, t.uri, "truong"), Mechanism::ecdsa_sha256, digest);
    CHECK(sig.size() == 64);
    CHECK(verify("truong", Mechanism::ecdsa_sha256, digest, sig));
    CHECK_FALSE(verify("truong", Mechanism::ecdsa_sha256, flipped(digest, 31), sig));
    sig = tm.sign(login, key_uri(tm, t.uri, "extra-p384"), Mechanism::ecdsa_sha256, digest);
    CHECK(sig.size() == 96);
    CHECK(verify("extra-p384", Mechanism::ecdsa_sha256, digest, sig));
    CHECK_FALSE(verify("extra-p384", Mechanism::ecdsa_sha256, flipped(digest, 5), sig));
}

TEST_CASE("libp11 signs with the PKCS#11 mechanism each Mechanism names (fault module)", "[hsm]") {
    SoftHsmToken token;
    TokenManager tm({token.fault_module()});
    const TokenInfo t = the_token(tm);
    Login login = tm.login(t.uri, "1234");
    const auto rsa = key_uri(tm, t.uri, "ht"), ec = key_uri(tm, t.uri, "truong");
    std::filesystem::remove(token.fault_log());
    tm.sign(login, rsa, Mechanism::rsa_pkcs1_sha256, digest);
    tm.sign(login, rsa, Mechanism::rsa_pss_sha256, digest);
    tm.sign(login, ec, Mechanism::ecdsa_sha256, digest);
    const auto mechanisms = sign_mechanisms(token.fault_log());
    REQUIRE(mechanisms.size() == 3);
    CHECK(mechanisms[0] == "mechanism=0x1");     // CKM_RSA_PKCS over the DigestInfo
    CHECK(mechanisms[1] == "mechanism=0xd");     // CKM_RSA_PKCS_PSS
    CHECK(mechanisms[2] == "mechanism=0x1041");  // CKM_ECDSA
}

TEST_CASE("a mechanism that does not fit the key or a digest that is not SHA-256 is refused",
          "[hsm]") {
    SoftHsmToken token;
    TokenManager tm({SoftHsmToken::softhsm()});
    const TokenInfo t = the_token(tm);
    Login login = tm.login(t.uri, "1234");
    auto e = error_of(
        [&] { tm.sign(login, key_uri(tm, t.uri, "truong"), Mechanism::rsa_pss_sha256, digest); });
    REQUIRE(e);
    CHECK(e->code() == Errc::InvalidParameter);
    e = error_of(
        [&] { tm.sign(login, key_uri(tm, t.uri, "ht"), Mechanism::ecdsa_sha256, digest); });
    REQUIRE(e);
    CHECK(e->code() == Errc::InvalidParameter);
    const std::vector<unsigned char> short_digest(20, 1);
    e = error_of([&] {
        tm.sign(login, key_uri(tm, t.uri, "ht"), Mechanism::rsa_pkcs1_sha256, short_digest);
    });
    REQUIRE(e);
    CHECK(e->code() == Errc::InvalidParameter);
}

TEST_CASE("find_key describes the key and its certificate", "[hsm]") {
    SoftHsmToken token;
    TokenManager tm({SoftHsmToken::softhsm()});
    const TokenInfo t = the_token(tm);
    Login login = tm.login(t.uri, "1234");
    const KeyInfo k = tm.find_key(login, "pkcs11:token=hbsd-test;object=truong");
    CHECK(k.label == "truong");
    CHECK(k.algorithm == KeyAlgorithm::ec);
    CHECK(k.bits == 256);
    CHECK(k.uri.find("id=%0F") != std::string::npos);
    REQUIRE(k.fingerprint.has_value());
    CHECK(*k.fingerprint == sha256_hex(certificate_der("truong")));
}

TEST_CASE("key URIs round-trip - format then parse then find the same key", "[hsm]") {
    SoftHsmToken token;
    TokenManager tm({SoftHsmToken::softhsm()});
    const TokenInfo t = the_token(tm);
    Login login = tm.login(t.uri, "1234");
    for (const auto& k : tm.list_keys(t.uri)) {
        INFO(k.uri);
        // p11-kit parses what we formatted, and formats it back the same.
        P11KitUri* parsed = p11_kit_uri_new();
        REQUIRE(p11_kit_uri_parse(k.uri.c_str(), P11_KIT_URI_FOR_ANY, parsed) == P11_KIT_URI_OK);
        char* again = nullptr;
        REQUIRE(p11_kit_uri_format(parsed, P11_KIT_URI_FOR_OBJECT_ON_TOKEN, &again) ==
                P11_KIT_URI_OK);
        CHECK(std::string(again) == k.uri);
        free(again);
        p11_kit_uri_free(parsed);

        const KeyInfo found = tm.find_key(login, k.uri);
        CHECK(found.uri == k.uri);
        CHECK(found.label == k.label);
        CHECK(found.fingerprint == k.fingerprint);
        // The short form names the same key.
        CHECK(tm.find_key(login, "pkcs11:token=hbsd-test;object=" + k.label).uri == k.uri);
    }
}

TEST_CASE("four threads sign at once on one token in parallel and all verify", "[hsm]") {
    SoftHsmToken token;
    TokenManager tm({token.fault_module()});
    const TokenInfo t = the_token(tm);
    Login login = tm.login(t.uri, "1234");
    const std::map<std::string, Mechanism> keys = {{"gvbm-TOAN", Mechanism::rsa_pkcs1_sha256},
                                                   {"ht", Mechanism::rsa_pss_sha256},
                                                   {"truong", Mechanism::ecdsa_sha256},
                                                   {"extra-p384", Mechanism::ecdsa_sha256}};
    std::map<std::string, std::string> uris;
    for (auto& [name, m] : keys) uris[name] = key_uri(tm, t.uri, name);
    // Slow C_Sign down so that overlapping calls are certain if they are allowed at all.
    token.set_faults("sign_delay_ms=20");

    std::atomic<int> good{0}, bad{0};
    std::vector<std::thread> threads;
    for (int n = 0; n < 4; ++n) {
        threads.emplace_back([&, n] {
            for (int i = 0; i < 10; ++i) {
                for (auto& [name, mechanism] : keys) {
                    const auto d = sha256("record " + std::to_string(n) + "/" + std::to_string(i));
                    try {
                        const auto sig = tm.sign(login, uris.at(name), mechanism, d);
                        (verify(name, mechanism, d, sig) ? good : bad)++;
                    } catch (const Error&) {
                        bad++;
                    }
                }
            }
        });
    }
    for (auto& th : threads) th.join();
    CHECK(bad == 0);
    CHECK(good == 4 * 10 * 4);
    CHECK(max_in_flight(token.fault_log(), "C_Sign") > 1);
}

TEST_CASE("the session pool bounds concurrent signing per token", "[hsm]") {
    SoftHsmToken token;
    TokenManagerOptions options;
    options.max_sessions_per_token = 2;
    TokenManager tm({token.fault_module()}, options);
    const TokenInfo t = the_token(tm);
    Login login = tm.login(t.uri, "1234");
    const std::string key = key_uri(tm, t.uri, "truong");
    token.set_faults("sign_delay_ms=20");
    std::vector<std::thread> threads;
    std::atomic<int> good{0};
    for (int n = 0; n < 6; ++n)
        threads.emplace_back([&] {
            for (int i = 0; i < 4; ++i)
                if (tm.sign(login, key, Mechanism::ecdsa_sha256, digest).size() == 64) ++good;
        });
    for (auto& th : threads) th.join();
    CHECK(good == 24);
    CHECK(max_in_flight(token.fault_log(), "C_Sign") == 2);
}

TEST_CASE("a second login while logged in needs the same PIN", "[hsm]") {
    SoftHsmToken token;
    TokenManager tm({SoftHsmToken::softhsm()});
    const TokenInfo t = the_token(tm);
    Login first = tm.login(t.uri, "1234");

    // C_Login cannot check it (the token is logged in); the verifier must.
    auto e = error_of([&] { tm.login(t.uri, "0000"); });
    REQUIRE(e);
    CHECK(e->code() == Errc::PinIncorrect);
    CHECK(param(*e, "retries_left") == "2");
    e = error_of([&] { tm.login(t.uri, "12345"); });
    REQUIRE(e);
    CHECK(e->code() == Errc::PinIncorrect);
    CHECK(param(*e, "retries_left") == "1");

    Login second = tm.login(t.uri, "1234");  // the right PIN still works
    CHECK(static_cast<bool>(second));

    e = error_of([&] { tm.login(t.uri, ""); });
    REQUIRE(e);
    CHECK(e->code() == Errc::PinLocked);
    // Refused from now on, the right PIN included, while this login state lasts ...
    e = error_of([&] { tm.login(t.uri, "1234"); });
    REQUIRE(e);
    CHECK(e->code() == Errc::PinLocked);
    // ... and the Logins already given keep working.
    CHECK(tm.sign(second, key_uri(tm, t.uri, "gvcn"), Mechanism::rsa_pkcs1_sha256, digest).size() ==
          256);

    // Once every Login is gone the token is logged out and the token itself judges again.
    first = Login(std::move(second));
    { Login drop = std::move(first); }
    CHECK_FALSE(the_token(tm).logged_in);
    e = error_of([&] { tm.login(t.uri, "0000"); });
    REQUIRE(e);
    CHECK(e->code() == Errc::PinIncorrect);
    CHECK(param(*e, "retries_left") == "<absent>");
    CHECK_NOTHROW(tm.login(t.uri, "1234"));
}

TEST_CASE("parallel wrong PINs while logged in cannot exceed the limit", "[hsm]") {
    SoftHsmToken token;
    TokenManager tm({SoftHsmToken::softhsm()});
    const TokenInfo t = the_token(tm);
    Login first = tm.login(t.uri, "1234");
    std::atomic<int> incorrect{0}, locked{0}, other{0};
    std::vector<std::thread> threads;
    for (int n = 0; n < 8; ++n)
        threads.emplace_back([&, n] {
            auto e = error_of([&] { tm.login(t.uri, "wrong" + std::to_string(n)); });
            if (e && e->code() == Errc::PinIncorrect)
                ++incorrect;
            else if (e && e->code() == Errc::PinLocked)
                ++locked;
            else
                ++other;
        });
    for (auto& th : threads) th.join();
    // Three tries: two answered PinIncorrect, the third and every later one PinLocked.
    CHECK(incorrect == 2);
    CHECK(locked == 6);
    CHECK(other == 0);
    auto e = error_of([&] { tm.login(t.uri, "1234"); });
    REQUIRE(e);
    CHECK(e->code() == Errc::PinLocked);
}

TEST_CASE("many right PINs at once while logged in all succeed (checks wait for a free try)",
          "[hsm]") {
    SoftHsmToken token;
    TokenManager tm({SoftHsmToken::softhsm()});
    const TokenInfo t = the_token(tm);
    Login first = tm.login(t.uri, "1234");
    std::atomic<int> ok{0}, failed{0};
    std::vector<std::thread> threads;
    for (int n = 0; n < 16; ++n)
        threads.emplace_back([&] {
            auto e = error_of([&] { Login l = tm.login(t.uri, "1234"); });
            ++(e ? failed : ok);
        });
    for (auto& th : threads) th.join();
    CHECK(ok == 16);
    CHECK(failed == 0);
}

TEST_CASE(
    "a restarted HSM is re-initialised: its tokens come back and need a new login "
    "(fault module)",
    "[hsm]") {
    for (const char* rv : {"CKR_DEVICE_ERROR", "CKR_CRYPTOKI_NOT_INITIALIZED"}) {
        INFO(rv);
        SoftHsmToken token;
        TokenManager tm({token.fault_module()});
        const TokenInfo t = the_token(tm);
        Login login = tm.login(t.uri, "1234");
        const std::string key = key_uri(tm, t.uri, "ht");
        CHECK(verify("ht", Mechanism::rsa_pkcs1_sha256, digest,
                     tm.sign(login, key, Mechanism::rsa_pkcs1_sha256, digest)));
        // Every call fails until the module is finalised and initialised again.
        token.set_faults(std::string("restart_needed=") + rv + ",1");
        auto e = error_of([&] { tm.sign(login, key, Mechanism::rsa_pkcs1_sha256, digest); });
        REQUIRE(e);
        CHECK(e->code() == Errc::TokenNotPresent);
        // A listing re-initialises the module; the token is there again, as a new one.
        bool back = false;
        for (int i = 0; i < 30 && !back; ++i) {
            for (const auto& info : tm.list_tokens())
                if (info.uri == t.uri && info.present) back = true;
            if (!back) std::this_thread::sleep_for(std::chrono::milliseconds(100));
        }
        REQUIRE(back);
        // The old login died with the module's state.
        e = error_of([&] { tm.sign(login, key, Mechanism::rsa_pkcs1_sha256, digest); });
        REQUIRE(e);
        CHECK(e->code() == Errc::TokenNotPresent);
        Login again = tm.login(t.uri, "1234");
        CHECK(verify("ht", Mechanism::rsa_pkcs1_sha256, digest,
                     tm.sign(again, key, Mechanism::rsa_pkcs1_sha256, digest)));
        // Same URI and serial, another incarnation: how the daemon tells a restart from no
        // change between two listings (token events, the PIN cache).
        CHECK(t.incarnation != 0);
        CHECK(login.incarnation() == t.incarnation);
        const TokenInfo now = the_token(tm);
        CHECK(now.uri == t.uri);
        CHECK(now.serial == t.serial);
        CHECK(now.incarnation != t.incarnation);
        CHECK(again.incarnation() == now.incarnation);
        CHECK(the_token(tm).incarnation == now.incarnation);  // stable while it stays
    }
}

TEST_CASE("a failed C_Sign on a token that has gone is TokenNotPresent (fault module)", "[hsm]") {
    SoftHsmToken token;
    TokenManager tm({token.fault_module()});
    const TokenInfo t = the_token(tm);
    Login login = tm.login(t.uri, "1234");
    const std::string key = key_uri(tm, t.uri, "ht");
    CHECK(verify("ht", Mechanism::rsa_pkcs1_sha256, digest,
                 tm.sign(login, key, Mechanism::rsa_pkcs1_sha256, digest)));
    // The device error of a card being pulled, seen by the signature in flight.
    token.set_faults("sign=CKR_DEVICE_ERROR\ntoken_present=0\n");
    auto e = error_of([&] { tm.sign(login, key, Mechanism::rsa_pkcs1_sha256, digest); });
    REQUIRE(e);
    CHECK(e->code() == Errc::TokenNotPresent);
    token.set_faults("");
    Login second = tm.login(t.uri, "1234");
    token.set_faults("sign=CKR_DEVICE_REMOVED");
    e = error_of([&] { tm.sign(second, key, Mechanism::rsa_pkcs1_sha256, digest); });
    REQUIRE(e);
    CHECK(e->code() == Errc::TokenNotPresent);
    token.set_faults("");
    Login again = tm.login(t.uri, "1234");
    CHECK(verify("ht", Mechanism::rsa_pkcs1_sha256, digest,
                 tm.sign(again, key, Mechanism::rsa_pkcs1_sha256, digest)));
}
