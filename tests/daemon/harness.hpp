// Integration-test harness: a private SoftHSM2 token (copied from a template made once per ctest
// run), a config file, and the REAL hbsd binary started with fork/exec on a temporary socket.
// Clients are the protocol library (in-process, or in a child under another uid) and hbsctl.
#pragma once

#include "protocol/client.hpp"
#include "protocol/types.hpp"
#include "tests/support/temp_dir.hpp"

#include <sys/types.h>

#include <boost/json.hpp>
#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace hbsd::test {

namespace fs = std::filesystem;

inline constexpr const char* kPin = "1234";
inline constexpr uid_t kNobody = 65534;
inline constexpr const char* kSigner = "vn.hocbaso.Signer.";

// The PKI and token template made by the daemon_pki ctest fixture (or on first use when a test
// binary runs alone): make-test-pki + make-softhsm-token.
const fs::path& pki_dir();
const fs::path& token_template_dir();

void write_file(const fs::path& p, const std::string& data);
std::string fixture();
// The fixture with record code R replaced everywhere (Ids and MaDinhDanh): student n of a class.
std::string fixture_student(int n);
inline const char* kFixtureRecord = "94000123-2024-0001";
inline const char* kYear = "2024-2025";
inline const std::vector<std::string> kSubjects = {"TOAN", "NGUVAN",    "TIENGANH", "GDCD",
                                                   "LSDL", "KHTN",      "CONGNGHE", "TINHOC",
                                                   "GDTC", "NGHETHUAT", "HDTNHN",   "GDDP"};

struct DaemonOptions {
    // Lines appended to [limits].
    std::map<std::string, long long> limits;
    // uid -> capabilities (TOML array text, e.g. R"(["read"])"); root gets admin always.
    std::map<uid_t, std::string> access;
    bool trust_test_ca = true;
    // Sign asks the registry (registry_checks in hbsd.toml). Off by default: most tests exercise
    // the signing path with an empty registry; tests/registry turns it on.
    bool registry = false;
    // A state directory that outlives this daemon (restart tests); default: inside dir().
    std::optional<std::string> state_dir;
    // crl_files of hbsd.toml.
    std::vector<std::string> crl_files;
    // Load SoftHSM2 through tests/support/pkcs11-fault; Daemon::set_faults drives it.
    bool fault_module = false;
    // Extra environment of the daemon (NOTIFY_SOCKET, WATCHDOG_USEC, ...).
    std::map<std::string, std::string> env;
    // TOML appended to the config file (e.g. [[token_mapping]] tables).
    std::string extra_config;
    // log_level of hbsd.toml. Set, hbsd also starts without --verbose (which would log debug
    // lines whatever the file says); unset, the file has none and hbsd runs with --verbose.
    std::optional<std::string> log_level;
    // Runs before hbsd starts, with the directory of this daemon's own SoftHSM2 installation
    // (see pkcs11_tool): objects a test adds there are on the token from hbsd's first look.
    std::function<void(const fs::path& dir)> prepare_token;

    DaemonOptions& limit(const std::string& key, long long value) {
        limits[key] = value;
        return *this;
    }
    DaemonOptions& grant(uid_t uid, const std::string& capabilities) {
        access[uid] = capabilities;
        return *this;
    }
    DaemonOptions& no_trust() {
        trust_test_ca = false;
        return *this;
    }
    DaemonOptions& setenv(const std::string& name, const std::string& value) {
        env[name] = value;
        return *this;
    }
    DaemonOptions& with_registry() {
        registry = true;
        return *this;
    }
    DaemonOptions& with_faults() {
        fault_module = true;
        return *this;
    }
    DaemonOptions& with_log_level(const std::string& level) {
        log_level = level;
        return *this;
    }
    DaemonOptions& with_token(std::function<void(const fs::path& dir)> prepare) {
        prepare_token = std::move(prepare);
        return *this;
    }
};

class Daemon {
  public:
    explicit Daemon(DaemonOptions options = {});
    Daemon(const Daemon&) = delete;
    Daemon& operator=(const Daemon&) = delete;
    ~Daemon();

    const fs::path& dir() const { return dir_; }
    std::string socket() const { return (dir_ / "hbsd.sock").string(); }
    pid_t pid() const { return pid_; }
    protocol::Client client() const;
    // SIGTERM, then the exit status (waitpid's), within `timeout`; -1 if it did not exit.
    int terminate(std::chrono::seconds timeout = std::chrono::seconds(30));
    // Waits for the process to exit on its own.
    int wait(std::chrono::seconds timeout);
    std::string log() const;
    // Replaces hbsd.toml (atomically) by the file these options make, or by `text`; the
    // daemon reads it on SIGHUP.
    void reconfigure(const DaemonOptions& options);
    void write_config(const std::string& text);
    // The hbsd.toml these options make for this daemon.
    std::string config_text(const DaemonOptions& options) const;
    // Replaces the fault module's control file (see pkcs11_fault.cpp), atomically.
    void set_faults(const std::string& directives);

    // Looked up over the socket once.
    std::string token_uri();
    std::string key_uri(const std::string& label);

  private:
    fs::path dir_;
    pid_t pid_ = -1;
    std::string token_uri_;
    std::map<std::string, std::string> keys_;
};

// pkcs11-tool, logged in with kPin, on the token "hbsd-test" of the SoftHSM2 installation in
// `dir` (a Daemon's dir(), as prepare_token gets it); throws with its output if it fails.
void pkcs11_tool(const fs::path& dir, const std::string& args);

// Runs `fn` in a forked child that drops to `uid` (and its gid, no supplementary groups)
// BEFORE connecting, so SO_PEERCRED sees that uid. Returns what fn returned (a short string).
std::string as_uid(uid_t uid, const std::function<std::string()>& fn);

// "ok" or the error's wire name, for compact assertions.
std::string outcome(const std::function<void()>& fn);

// Runs hbsctl with arguments; stdin from `input`; returns exit code, stdout, stderr.
struct Run {
    int code = -1;
    std::string out, err;
};
Run run_hbsctl(const std::vector<std::string>& args, const std::string& input = {},
               std::optional<std::string> pin_on_fd3 = std::nullopt);
// The same for the hbsd binary (e.g. --check-config).
Run run_hbsd(const std::vector<std::string>& args);

boost::json::object sign_params(const std::string& session, const std::string& key,
                                const std::string& role, const std::string& document,
                                std::optional<std::string> subject = std::nullopt);

}  // namespace hbsd::test
