// Test fixtures for hsm/: a throw-away PKI (made once per process, or once per ctest run via
// the hsm_pki fixture), a private SoftHSM2 token per test, the fault-injection module, and
// OpenSSL-side verification of signatures.
#pragma once

#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "hsm/token_manager.hpp"
#include "protocol/error.hpp"

namespace hbsd::hsm::test {

struct Person {
    std::string name;
    std::string key_type;  // rsa, p256, p384
    int id;                // CKA_ID on the token (line number in people.tsv)
};

// The test PKI directory (ca.pem, <name>.key/.pem, people.tsv).
const std::filesystem::path& pki_dir();
std::vector<Person> people();

// A private SoftHSM2 installation with one token holding every key and certificate of the
// PKI; sets SOFTHSM2_CONF for this process. Removed on destruction.
class SoftHsmToken {
  public:
    explicit SoftHsmToken(std::string label = "hbsd-test", std::string pin = "1234");
    SoftHsmToken(const SoftHsmToken&) = delete;
    SoftHsmToken& operator=(const SoftHsmToken&) = delete;
    ~SoftHsmToken();

    const std::filesystem::path& dir() const { return dir_; }
    // Adds a second, empty token to the same SoftHSM2 installation.
    void add_empty_token(const std::string& label, const std::string& pin);
    // Generates an EC P-256 key pair on the token "hbsd-test" with CKA_ALWAYS_AUTHENTICATE.
    void add_always_authenticate_key(const std::string& label, const std::string& hex_id);
    // Adds another token holding every key and certificate of the PKI.
    void add_token(const std::string& label, const std::string& pin);

    // Modules: SoftHSM2 directly, or through tests/support/pkcs11-fault (control file below).
    static ModuleConfig softhsm();
    ModuleConfig fault_module();
    // Replaces the fault module's control file (see pkcs11_fault.cpp for the directives).
    void set_faults(const std::string& directives);
    std::filesystem::path fault_log() const { return dir_ / "fault.log"; }

  private:
    std::filesystem::path dir_;
};

// DER certificate of a person, from the PKI files.
std::vector<unsigned char> certificate_der(const std::string& name);
std::string sha256_hex(std::span<const unsigned char> data);
std::vector<unsigned char> sha256(std::string_view data);

// Verifies with the public key of the person's certificate. ECDSA signatures are raw r||s.
bool verify(const std::string& name, Mechanism mechanism, std::span<const unsigned char> digest,
            std::span<const unsigned char> signature);
// The deterministic RSA PKCS#1 v1.5 signature, computed in-process from the PKI's key file.
std::vector<unsigned char> reference_pkcs1_signature(const std::string& name,
                                                     std::span<const unsigned char> digest);

// Runs f, returns the hbsd::Error it threw (nullopt if none).
template <typename F>
std::optional<Error> error_of(F&& f) {
    try {
        f();
    } catch (const Error& e) {
        return e;
    }
    return std::nullopt;
}

}  // namespace hbsd::hsm::test
