// /etc/hbsd/hbsd.toml. Every key is known here; an unknown key, a wrong type or an impossible
// value is refused with "file:line:column: message", because a signing appliance that silently
// ignores a misspelt limit or access rule is worse than one that does not start.
#pragma once

#include "daemon/capability.hpp"
#include "hsm/pcsc/mapping.hpp"
#include "hsm/token_manager.hpp"

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace hbsd::daemon {

class ConfigError : public std::runtime_error {
  public:
    using std::runtime_error::runtime_error;
};

struct SocketConfig {
    std::string path = "/run/hbsd/hbsd.sock";
    unsigned mode = 0660;
    std::optional<std::string> group;  // group owner of the socket file
};

struct Limits {
    std::size_t max_frame_bytes = 32u << 20;
    std::size_t max_document_bytes = 8u << 20;
    unsigned max_depth = 64;
    unsigned max_connections = 256;
    unsigned max_inflight = 64;
    unsigned idle_timeout_s = 60;
    unsigned session_ttl_s = 900;        // when OpenSession gives no ttl_s
    unsigned session_ttl_max_s = 28800;  // a longer ttl_s is cut to this
    unsigned max_batch_items = 1000;
    unsigned worker_threads = 4;
    unsigned idempotency_entries = 10000;
};

// One [[access]] table: a uid or a gid (resolved from names at load time) and what it grants.
struct AccessRule {
    std::optional<uid_t> uid;
    std::optional<gid_t> gid;
    CapabilitySet capabilities = 0;
    std::string origin;  // "file:line", for log lines about the rule
};

// [pin_cache]: OpenSession with an empty PIN reuses the PIN its caller typed for the same
// token, as gpg-agent does with passphrases (daemon/pin_cache.hpp). Off unless enabled.
struct PinCacheConfig {
    bool enabled = false;
    // Counted from when the PIN was typed, not from its last use: a cached PIN is never kept
    // alive by being used.
    unsigned ttl_s = 600;
    unsigned max_entries = 64;
};

struct Config {
    std::vector<hsm::ModuleConfig> modules;
    // [[token_mapping]]: which module drives the token in which PC/SC reader. With any entry,
    // the daemon watches pcscd (daemon/token_watch.hpp); a mapped token whose reader holds no
    // card is not present.
    std::vector<hsm::pcsc::ReaderMapping> token_mapping;
    SocketConfig socket;
    Limits limits;
    std::vector<AccessRule> access;
    std::optional<std::string> trust_anchors;  // directory of PEM files
    std::vector<std::string> crl_files;
    std::string state_dir = "/var/lib/hbsd";
    // Sign asks the registry (registered, approved, assigned, year open, record held here).
    // Off only for tests and benches of the signing path alone; production keeps it on.
    bool registry_checks = true;
    PinCacheConfig pin_cache;
    // Lowest priority logged: "error", "warning", "info" or "debug" (hbsd -v adds debug).
    std::string log_level = "info";
};

inline constexpr std::string_view kDefaultConfigPath = "/etc/hbsd/hbsd.toml";

Config load_config(const std::string& path);
// `source_name` is used in error messages in place of a file name.
Config parse_config(std::string_view text, const std::string& source_name);

}  // namespace hbsd::daemon
