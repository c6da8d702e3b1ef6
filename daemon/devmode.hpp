// Development mode (`hbsd --dev --socket PATH`): a throw-away world in which the whole signing
// chain runs on a fresh machine. In a new temporary directory it makes a demo PKI with OpenSSL
// (root CA; 12 subject teachers, homeroom teacher, principal: RSA-2048; school seal: EC P-256),
// a private SoftHSM2 installation (its own SOFTHSM2_CONF) with one token holding every key and
// certificate (stored through libp11), and a configuration that trusts the demo CA and grants
// the invoking uid every capability. Nothing outside the directory is touched; the directory
// goes away with the DevEnvironment.
#pragma once

#include "daemon/config.hpp"

#include <sys/types.h>

#include <string>

namespace hbsd::daemon::devmode {

struct Options {
    std::string socket_path;
    std::string module_path;  // the SoftHSM2 PKCS#11 module
    uid_t grant_uid;
};

class DevEnvironment {
  public:
    // Throws std::runtime_error (or hbsd::Error) when provisioning fails; removes what it made.
    explicit DevEnvironment(const Options& options);
    DevEnvironment(const DevEnvironment&) = delete;
    DevEnvironment& operator=(const DevEnvironment&) = delete;
    ~DevEnvironment();

    const Config& config() const noexcept { return config_; }
    // The one line printed before serving:
    // {"socket","token","pin","ca","people":[{"role","subject"?,"name","person","key","certificate"}]}
    const std::string& announcement() const noexcept { return announcement_; }
    const std::string& directory() const noexcept { return dir_; }

  private:
    std::string dir_;
    Config config_;
    std::string announcement_;
};

}  // namespace hbsd::daemon::devmode
