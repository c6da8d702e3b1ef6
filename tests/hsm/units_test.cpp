// Fast tests of hsm/'s pieces that need no token (no ctest label).
#include <openssl/bn.h>
#include <openssl/ec.h>

#include <chrono>
#include <cstring>
#include <thread>

#include "hsm/errors.hpp"
#include "hsm/pin_verifier.hpp"
#include "hsm/session_pool.hpp"
#include "hsm/signer.hpp"
#include "hsm/uri.hpp"
#include "tests/support/catch.hpp"

using namespace hbsd;
using namespace hbsd::hsm;

namespace {

CK_TOKEN_INFO token_info(const char* label, const char* serial) {
    CK_TOKEN_INFO info;
    std::memset(&info, ' ', sizeof info);
    auto put = [](unsigned char* field, size_t size, const char* text) {
        std::memcpy(field, text, std::min(size, std::strlen(text)));
    };
    put(info.label, sizeof info.label, label);
    put(info.manufacturerID, sizeof info.manufacturerID, "Acme; Inc.");
    put(info.model, sizeof info.model, "Model/1");
    put(info.serialNumber, sizeof info.serialNumber, serial);
    return info;
}

std::vector<unsigned char> der_sig(const char* r_hex, const char* s_hex) {
    BIGNUM* r = nullptr;
    BIGNUM* s = nullptr;
    BN_hex2bn(&r, r_hex);
    BN_hex2bn(&s, s_hex);
    ECDSA_SIG* sig = ECDSA_SIG_new();
    ECDSA_SIG_set0(sig, r, s);
    unsigned char* der = nullptr;
    const int len = i2d_ECDSA_SIG(sig, &der);
    std::vector<unsigned char> out(der, der + len);
    OPENSSL_free(der);
    ECDSA_SIG_free(sig);
    return out;
}

long retries(const Error& e) {
    const auto* v = e.parameters().if_contains("retries_left");
    return v && v->is_int64() ? static_cast<long>(v->as_int64()) : -1;
}

}  // namespace

TEST_CASE("token and key URIs are formatted by p11-kit and match what they name") {
    const auto info = token_info("hbsd test", "0123456789abcdef");
    const std::string token = format_token_uri(info);
    CHECK(token ==
          "pkcs11:model=Model%2F1;manufacturer=Acme%3B%20Inc.;serial=0123456789abcdef;"
          "token=hbsd%20test");
    const unsigned char id[] = {0x01};
    const std::string key = format_key_uri(info, id, "gvbm-TOAN");
    CHECK(key == token + ";id=%01;object=gvbm-TOAN;type=private");

    auto parsed = Pkcs11Uri::parse(key);
    REQUIRE(parsed.has_value());
    CHECK(parsed->matches_token(info));
    CHECK_FALSE(parsed->matches_token(token_info("hbsd test", "0123456789abcdee")));
    CHECK(parsed->matches_private_key(id, "gvbm-TOAN"));
    const unsigned char other_id[] = {0x02};
    CHECK_FALSE(parsed->matches_private_key(other_id, "gvbm-TOAN"));
    CHECK_FALSE(parsed->matches_private_key(id, "gvbm-NGUVAN"));
    CHECK(parsed->names_object());

    auto short_form = Pkcs11Uri::parse("pkcs11:object=gvbm-TOAN");
    REQUIRE(short_form.has_value());
    CHECK(short_form->matches_token(info));  // no token attributes: any token
    CHECK(short_form->matches_private_key(id, "gvbm-TOAN"));
    CHECK(short_form->matches_private_key(other_id, "gvbm-TOAN"));

    auto cert = Pkcs11Uri::parse("pkcs11:object=gvbm-TOAN;type=cert");
    REQUIRE(cert.has_value());
    CHECK_FALSE(cert->matches_private_key(id, "gvbm-TOAN"));

    auto token_only = Pkcs11Uri::parse(token);
    REQUIRE(token_only.has_value());
    CHECK_FALSE(token_only->names_object());
}

TEST_CASE("slot URIs name a reader by description and slot id") {
    CK_SLOT_INFO slot;
    std::memset(&slot, ' ', sizeof slot);
    std::memcpy(slot.slotDescription, "Reader 0", 8);
    std::memcpy(slot.manufacturerID, "Acme", 4);
    const std::string uri = format_slot_uri(slot, 5);
    CHECK(uri == "pkcs11:slot-description=Reader%200;slot-manufacturer=Acme;slot-id=5");
    auto parsed = Pkcs11Uri::parse(uri);
    REQUIRE(parsed.has_value());
    CHECK(parsed->matches_slot(slot, 5));
    CHECK_FALSE(parsed->matches_slot(slot, 6));
    CHECK(parsed->matches_token(blank_token_info()));
    auto any = Pkcs11Uri::parse("pkcs11:token=x");
    REQUIRE(any.has_value());
    CHECK(any->matches_slot(slot, 6));
    CHECK_FALSE(any->matches_token(blank_token_info()));
}

TEST_CASE("URIs p11-kit refuses or with attributes it does not know are not URIs") {
    CHECK_FALSE(Pkcs11Uri::parse("").has_value());
    CHECK_FALSE(Pkcs11Uri::parse("token=x").has_value());
    CHECK_FALSE(Pkcs11Uri::parse("http://example.com").has_value());
    CHECK_FALSE(Pkcs11Uri::parse("pkcs11:token=%zz").has_value());
    CHECK_FALSE(Pkcs11Uri::parse("pkcs11:token=a;whatever=b").has_value());
    CHECK_FALSE(Pkcs11Uri::parse(std::string_view("pkcs11:token=a\0;object=b", 24)).has_value());
    CHECK(Pkcs11Uri::parse("pkcs11:").has_value());
}

TEST_CASE("DER ECDSA signatures become r||s padded to the curve size") {
    const auto der = der_sig("01", "FF02");
    const auto raw = ecdsa_der_to_raw(der, 32);
    REQUIRE(raw.size() == 64);
    CHECK(raw[31] == 0x01);
    CHECK(std::all_of(raw.begin(), raw.begin() + 31, [](unsigned char b) { return b == 0; }));
    CHECK(raw[62] == 0xFF);
    CHECK(raw[63] == 0x02);

    // r does not fit in 32 bytes
    CHECK(ecdsa_der_to_raw(der_sig(std::string(66, 'A').c_str(), "01"), 32).empty());
    // trailing bytes, truncation, garbage
    auto longer = der;
    longer.push_back(0);
    CHECK(ecdsa_der_to_raw(longer, 32).empty());
    CHECK(ecdsa_der_to_raw(std::span(der).first(der.size() - 1), 32).empty());
    const unsigned char junk[] = {0x30, 0x03, 0x02, 0x01};
    CHECK(ecdsa_der_to_raw(junk, 32).empty());
}

TEST_CASE("CKR codes of a login map to PinIncorrect / PinLocked / TokenNotPresent") {
    const std::string uri = "pkcs11:token=t";
    auto e = login_error(CKR_PIN_INCORRECT, CKF_USER_PIN_FINAL_TRY, uri);
    CHECK(e.code() == Errc::PinIncorrect);
    CHECK(retries(e) == 1);
    e = login_error(CKR_PIN_INCORRECT, CKF_USER_PIN_COUNT_LOW, uri);
    CHECK(e.code() == Errc::PinIncorrect);
    CHECK(retries(e) == -1);
    e = login_error(CKR_PIN_INCORRECT, std::nullopt, uri);
    CHECK(e.code() == Errc::PinIncorrect);
    CHECK(retries(e) == -1);
    CHECK(login_error(CKR_PIN_INCORRECT, CKF_USER_PIN_LOCKED, uri).code() == Errc::PinLocked);
    CHECK(login_error(CKR_PIN_LOCKED, 0, uri).code() == Errc::PinLocked);
    CHECK(login_error(CKR_PIN_EXPIRED, 0, uri).code() == Errc::PinLocked);
    CHECK(login_error(CKR_PIN_LEN_RANGE, 0, uri).code() == Errc::PinIncorrect);
    CHECK(login_error(CKR_TOKEN_NOT_PRESENT, 0, uri).code() == Errc::TokenNotPresent);
    CHECK(login_error(CKR_DEVICE_REMOVED, std::nullopt, uri).code() == Errc::TokenNotPresent);
    e = login_error(CKR_GENERAL_ERROR, 0, uri);
    CHECK(e.code() == Errc::Internal);
    CHECK(e.detail().find("CKR_GENERAL_ERROR") != std::string::npos);
}

TEST_CASE("CKR codes of other operations map to the contract's errors") {
    const std::string token = "pkcs11:token=t", key = "pkcs11:token=t;object=k";
    CHECK(ckr_error(CKR_DEVICE_REMOVED, "C_Sign", token, key).code() == Errc::TokenNotPresent);
    CHECK(ckr_error(CKR_SESSION_HANDLE_INVALID, "C_Sign", token, key).code() ==
          Errc::TokenNotPresent);
    CHECK(ckr_error(CKR_KEY_HANDLE_INVALID, "C_Sign", token, key).code() == Errc::KeyNotFound);
    CHECK(ckr_error(CKR_KEY_HANDLE_INVALID, "C_FindObjects", token).code() == Errc::Internal);
    CHECK(ckr_error(CKR_SESSION_COUNT, "C_OpenSession", token).code() == Errc::Busy);
    CHECK(ckr_error(0x80000001UL, "C_Sign", token, key).detail().find("CKR_0x80000001") !=
          std::string::npos);
    CHECK(ckr_name(CKR_PIN_LOCKED) == "CKR_PIN_LOCKED");
}

TEST_CASE("the PIN verifier accepts only the same PIN") {
    PinVerifier v("1234");
    CHECK(v.matches("1234"));
    CHECK_FALSE(v.matches("12345"));
    CHECK_FALSE(v.matches("123"));
    CHECK_FALSE(v.matches(""));
    CHECK_FALSE(v.matches(std::string_view("1234\0", 5)));
    PinVerifier empty("");
    CHECK(empty.matches(""));
    CHECK_FALSE(empty.matches("0"));
}

TEST_CASE("the session pool admits at most its limit and times out with Busy") {
    CHECK(SessionPool(0).limit() == 1);
    CHECK(SessionPool(100).limit() == SessionPool::libp11_max_sessions);
    SessionPool pool(2);
    {
        auto a = pool.acquire();
        auto b = pool.acquire();
        CHECK(pool.in_use() == 2);
        bool busy = false;
        try {
            pool.acquire(0, std::chrono::milliseconds(20));
        } catch (const Error& e) {
            busy = e.code() == Errc::Busy;
        }
        CHECK(busy);
        // A place freed by another thread lets a waiter in.
        std::thread t([lease = std::move(a)]() mutable {
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
            SessionPool::Lease gone = std::move(lease);
        });
        auto c = pool.acquire(0, std::chrono::seconds(5));
        t.join();
        CHECK(pool.in_use() == 2);
    }
    CHECK(pool.in_use() == 0);
    CHECK(pool.peak() == 2);
}

TEST_CASE("the session pool asks for a probe only beyond the sessions libp11 holds") {
    SessionPool pool(4);
    {
        auto a = pool.acquire(7);
        CHECK(a.needs_probe());  // libp11 holds no session yet
        a.probed();
        auto b = pool.acquire(7);
        CHECK(b.needs_probe());  // a second one at once may need a second session
    }
    {
        auto a = pool.acquire(7);
        CHECK_FALSE(a.needs_probe());  // the first session is there to reuse
        auto b = pool.acquire(7);
        CHECK(b.needs_probe());  // b never probed: still unknown
        b.probed();
    }
    CHECK_FALSE(pool.acquire(7).needs_probe());
    // libp11's pool was emptied: start over.
    CHECK(pool.acquire(8).needs_probe());
}
