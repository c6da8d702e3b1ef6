// Development mode (`hbsd --dev --socket PATH`): a throw-away world in which the whole signing
// chain runs on a fresh machine. In a new temporary directory it makes a demo PKI with OpenSSL
// (root CA; 12 subject teachers, homeroom teacher, principal: RSA-2048; school seal: EC P-256),
// a private SoftHSM2 installation (its own SOFTHSM2_CONF) with one token holding every key and
// certificate, and a configuration that trusts the demo CA and grants the invoking uid every
// capability. Nothing outside the directory is touched; it goes away with the DevEnvironment.
#pragma once

#include "daemon/config.hpp"
#include "hsm/token_manager.hpp"
#include "store/store.hpp"

#include <sys/types.h>

#include <string>
#include <vector>

namespace hbsd::daemon::devmode {

struct Options {
    std::string socket_path;
    std::string module_path;   // the SoftHSM2 PKCS#11 module
    std::vector<uid_t> grant;  // uids that get every capability
};

struct Person {
    std::string role;     // subject_teacher, homeroom_teacher, principal, school
    std::string subject;  // for subject_teacher, else empty
    std::string name;     // object label on the token, e.g. gvbm-TOAN
    std::string person;   // person code (GV001, GVCN01, HT01) or the school code for the seal
    std::string common_name;
    std::string certificate_path;
    bool ec = false;
};

class DevEnvironment {
  public:
    // Sets SOFTHSM2_CONF for this process. Throws std::runtime_error (or hbsd::Error) when
    // provisioning fails, after removing what it made.
    explicit DevEnvironment(const Options& options);
    DevEnvironment(const DevEnvironment&) = delete;
    DevEnvironment& operator=(const DevEnvironment&) = delete;
    ~DevEnvironment();

    const Config& config() const noexcept { return config_; }
    const std::string& directory() const noexcept { return dir_; }
    const std::vector<Person>& people() const noexcept { return people_; }

    // The one line printed before serving, with the URIs the daemon's own TokenManager gives:
    // {"socket","token","pin","ca","people":[{"role","subject"?,"name","person","key","certificate"}]}
    std::string announcement(hsm::TokenManager& tokens) const;

    // The demo school's registry in `store`: every demo certificate registered and approved
    // (the seal as kind school for the school, the others as persons with their codes), and
    // the roles of class 6A1, year 2024-2025 assigned (each subject teacher for their
    // subject, GVCN01 homeroom, HT01 principal). Idempotent.
    void provision_registry(store::Store& store) const;

    static constexpr const char* kYear = "2024-2025";
    static constexpr const char* kClass = "6A1";

    static constexpr const char* kTokenLabel = "hbsd-dev";

  private:
    void provision_people(store::Store& store) const;

    std::string dir_;
    std::string pin_;
    std::string ca_path_;
    std::vector<Person> people_;
    Config config_;
};

}  // namespace hbsd::daemon::devmode
