#include "tests/hsm/support.hpp"

#include "tests/support/temp_dir.hpp"

#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/sha.h>
#include <openssl/x509.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <memory>
#include <mutex>
#include <sstream>
#include <stdexcept>

namespace hbsd::hsm::test {

namespace fs = std::filesystem;

namespace {

using hbsd::test::make_temp_dir;
using hbsd::test::quote;
using hbsd::test::run;

struct X509Free {
    void operator()(X509* x) const { X509_free(x); }
};
struct PkeyFree {
    void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
struct PkeyCtxFree {
    void operator()(EVP_PKEY_CTX* c) const { EVP_PKEY_CTX_free(c); }
};

std::unique_ptr<X509, X509Free> load_certificate(const std::string& name) {
    FILE* f = std::fopen((pki_dir() / (name + ".pem")).c_str(), "r");
    if (!f) throw std::runtime_error("no certificate for " + name);
    std::unique_ptr<X509, X509Free> x(PEM_read_X509(f, nullptr, nullptr, nullptr));
    std::fclose(f);
    if (!x) throw std::runtime_error("bad certificate for " + name);
    return x;
}

}  // namespace

// Removes, at exit, a PKI this process made for itself.
struct OwnedDir {
    fs::path path;
    ~OwnedDir() {
        std::error_code ec;
        if (!path.empty()) fs::remove_all(path, ec);
    }
};

const fs::path& pki_dir() {
    static OwnedDir owned;
    static const fs::path dir = [] {
        if (const char* env = std::getenv("HBSD_TEST_PKI");
            env && fs::exists(fs::path(env) / "people.tsv"))
            return fs::path(env);
        // Run outside ctest (no hsm_pki fixture): make one for this process (about 3 s).
        owned.path = make_temp_dir("hbsd-hsm-pki-");
        run(quote(fs::path(HBSD_TEST_SUPPORT_DIR) / "make-test-pki") + " " + quote(owned.path) +
            " >/dev/null");
        return owned.path;
    }();
    return dir;
}

std::vector<Person> people() {
    std::ifstream in(pki_dir() / "people.tsv");
    std::vector<Person> out;
    std::string line;
    int id = 0;
    while (std::getline(in, line)) {
        std::istringstream fields(line);
        std::string name, role, subject, code, type;
        std::getline(fields, name, '\t');
        std::getline(fields, role, '\t');
        std::getline(fields, subject, '\t');
        std::getline(fields, code, '\t');
        std::getline(fields, type, '\t');
        out.push_back({name, type, ++id});
    }
    return out;
}

SoftHsmToken::SoftHsmToken(std::string label, std::string pin) : dir_(make_temp_dir("hbsd-hsm-")) {
    run(quote(fs::path(HBSD_TEST_SUPPORT_DIR) / "make-softhsm-token") + " " + quote(dir_) + " " +
        quote(pki_dir()) + " '" + label + "' '" + pin + "'");
    // SoftHSM2 reads it at C_Initialize, i.e. when a TokenManager loads the module.
    ::setenv("SOFTHSM2_CONF", (dir_ / "softhsm2.conf").c_str(), 1);
    std::ofstream(dir_ / "fault.control");
}

SoftHsmToken::~SoftHsmToken() {
    std::error_code ec;
    fs::remove_all(dir_, ec);
}

void SoftHsmToken::add_empty_token(const std::string& label, const std::string& pin) {
    run("SOFTHSM2_CONF=" + quote(dir_ / "softhsm2.conf") +
        " softhsm2-util --init-token --free --label '" + label + "' --pin '" + pin +
        "' --so-pin 12345678 >/dev/null");
}

void SoftHsmToken::add_always_authenticate_key(const std::string& label,
                                               const std::string& hex_id) {
    run("SOFTHSM2_CONF=" + quote(dir_ / "softhsm2.conf") + " pkcs11-tool --module '" +
        HBSD_SOFTHSM2_MODULE + "' --token-label hbsd-test --login --pin 1234 --keypairgen " +
        "--key-type EC:prime256v1 --always-auth --id " + hex_id + " --label '" + label +
        "' >/dev/null 2>&1");
}

void SoftHsmToken::add_token(const std::string& label, const std::string& pin) {
    run(quote(fs::path(HBSD_TEST_SUPPORT_DIR) / "make-softhsm-token") + " " + quote(dir_) + " " +
        quote(pki_dir()) + " '" + label + "' '" + pin + "'");
}

ModuleConfig SoftHsmToken::softhsm() {
    return {"softhsm", HBSD_SOFTHSM2_MODULE};
}

ModuleConfig SoftHsmToken::fault_module() {
    ::setenv("HBSD_FAULT_REAL_MODULE", HBSD_SOFTHSM2_MODULE, 1);
    ::setenv("HBSD_FAULT_CONTROL", (dir_ / "fault.control").c_str(), 1);
    ::setenv("HBSD_FAULT_LOG", fault_log().c_str(), 1);
    return {"fault", HBSD_FAULT_MODULE};
}

void SoftHsmToken::set_faults(const std::string& directives) {
    // Written beside and renamed, so that the module never reads half a file.
    const fs::path tmp = dir_ / "fault.control.tmp";
    std::ofstream(tmp) << directives << "\n";
    fs::rename(tmp, dir_ / "fault.control");
}

std::vector<unsigned char> certificate_der(const std::string& name) {
    auto x = load_certificate(name);
    unsigned char* der = nullptr;
    const int len = i2d_X509(x.get(), &der);
    if (len <= 0) throw std::runtime_error("i2d_X509");
    std::vector<unsigned char> out(der, der + len);
    OPENSSL_free(der);
    return out;
}

std::string sha256_hex(std::span<const unsigned char> data) {
    unsigned char d[SHA256_DIGEST_LENGTH];
    SHA256(data.data(), data.size(), d);
    std::string out;
    char buf[3];
    for (unsigned char b : d) {
        std::snprintf(buf, sizeof buf, "%02x", b);
        out += buf;
    }
    return out;
}

std::vector<unsigned char> sha256(std::string_view data) {
    std::vector<unsigned char> d(SHA256_DIGEST_LENGTH);
    SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), d.data());
    return d;
}

bool verify(const std::string& name, Mechanism mechanism, std::span<const unsigned char> digest,
            std::span<const unsigned char> signature) {
    auto x = load_certificate(name);
    EVP_PKEY* pub = X509_get0_pubkey(x.get());
    std::unique_ptr<EVP_PKEY_CTX, PkeyCtxFree> ctx(EVP_PKEY_CTX_new(pub, nullptr));
    if (!ctx || EVP_PKEY_verify_init(ctx.get()) != 1) return false;
    if (EVP_PKEY_CTX_set_signature_md(ctx.get(), EVP_sha256()) != 1) return false;
    std::vector<unsigned char> sig(signature.begin(), signature.end());
    switch (mechanism) {
        case Mechanism::rsa_pkcs1_sha256:
            if (EVP_PKEY_CTX_set_rsa_padding(ctx.get(), RSA_PKCS1_PADDING) != 1) return false;
            break;
        case Mechanism::rsa_pss_sha256:
            if (EVP_PKEY_CTX_set_rsa_padding(ctx.get(), RSA_PKCS1_PSS_PADDING) != 1 ||
                EVP_PKEY_CTX_set_rsa_mgf1_md(ctx.get(), EVP_sha256()) != 1 ||
                EVP_PKEY_CTX_set_rsa_pss_saltlen(ctx.get(), RSA_PSS_SALTLEN_DIGEST) != 1)
                return false;
            break;
        case Mechanism::ecdsa_sha256: {
            // XML-DSig r||s back to DER for OpenSSL.
            const size_t half = (static_cast<size_t>(EVP_PKEY_get_bits(pub)) + 7) / 8;
            if (signature.size() != 2 * half) return false;
            ECDSA_SIG* es = ECDSA_SIG_new();
            BIGNUM* r = BN_bin2bn(signature.data(), static_cast<int>(half), nullptr);
            BIGNUM* s = BN_bin2bn(signature.data() + half, static_cast<int>(half), nullptr);
            ECDSA_SIG_set0(es, r, s);
            unsigned char* der = nullptr;
            const int len = i2d_ECDSA_SIG(es, &der);
            ECDSA_SIG_free(es);
            if (len <= 0) return false;
            sig.assign(der, der + len);
            OPENSSL_free(der);
            break;
        }
    }
    return EVP_PKEY_verify(ctx.get(), sig.data(), sig.size(), digest.data(), digest.size()) == 1;
}

std::vector<unsigned char> reference_pkcs1_signature(const std::string& name,
                                                     std::span<const unsigned char> digest) {
    FILE* f = std::fopen((pki_dir() / (name + ".key")).c_str(), "r");
    if (!f) throw std::runtime_error("no key for " + name);
    std::unique_ptr<EVP_PKEY, PkeyFree> key(PEM_read_PrivateKey(f, nullptr, nullptr, nullptr));
    std::fclose(f);
    std::unique_ptr<EVP_PKEY_CTX, PkeyCtxFree> ctx(EVP_PKEY_CTX_new(key.get(), nullptr));
    size_t len = 0;
    if (!ctx || EVP_PKEY_sign_init(ctx.get()) != 1 ||
        EVP_PKEY_CTX_set_rsa_padding(ctx.get(), RSA_PKCS1_PADDING) != 1 ||
        EVP_PKEY_CTX_set_signature_md(ctx.get(), EVP_sha256()) != 1 ||
        EVP_PKEY_sign(ctx.get(), nullptr, &len, digest.data(), digest.size()) != 1)
        throw std::runtime_error("reference signature");
    std::vector<unsigned char> out(len);
    if (EVP_PKEY_sign(ctx.get(), out.data(), &len, digest.data(), digest.size()) != 1)
        throw std::runtime_error("reference signature");
    out.resize(len);
    return out;
}

}  // namespace hbsd::hsm::test
