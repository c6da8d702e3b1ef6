// Helpers for the store tests: a temporary directory (TempDir, from tests/support/temp_dir.hpp)
// and throw-away certificates.
#pragma once

#include <openssl/evp.h>
#include <openssl/x509.h>

#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

#include "tests/support/temp_dir.hpp"

namespace hbsd::test {

// A self-signed EC P-256 certificate with the given CN and serial, as DER. The store only
// parses and records certificates; trust is policies/'s business.
inline std::vector<unsigned char> make_cert_der(const std::string& cn, long serial) {
    EVP_PKEY* key = EVP_EC_gen("P-256");
    X509* x = X509_new();
    if (!key || !x) throw std::runtime_error("openssl");
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), serial);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600L * 24 * 365);
    X509_set_pubkey(x, key);
    X509_NAME* name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "C", MBSTRING_ASC,
                               reinterpret_cast<const unsigned char*>("VN"), -1, -1, 0);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                               reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
    X509_set_issuer_name(x, name);
    if (X509_sign(x, key, EVP_sha256()) <= 0) throw std::runtime_error("X509_sign");
    unsigned char* out = nullptr;
    const int n = i2d_X509(x, &out);
    std::vector<unsigned char> der(out, out + n);
    OPENSSL_free(out);
    X509_free(x);
    EVP_PKEY_free(key);
    return der;
}

}  // namespace hbsd::test

#include <functional>
#include <optional>

#include "protocol/error.hpp"

namespace hbsd::test {

// Runs f and returns the hbsd::Error it throws; anything else (or nothing) is a test failure
// reported by the caller's REQUIRE on the returned optional.
inline std::optional<hbsd::Error> error_of(const std::function<void()>& f) {
    try {
        f();
    } catch (const hbsd::Error& e) {
        return e;
    }
    return std::nullopt;
}

inline std::string param(const hbsd::Error& e, const char* key) {
    const auto* v = e.parameters().if_contains(key);
    return v && v->is_string() ? std::string(v->as_string()) : std::string();
}

}  // namespace hbsd::test
