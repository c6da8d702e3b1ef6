// plan_reload: which settings of a new hbsd.toml go into force on SIGHUP and which keep their
// running values until a restart (daemon/reload.hpp). The daemon-level behaviour (signals,
// sd_notify, open connections and sessions) is in systemd_test.cpp.
#include "daemon/reload.hpp"
#include "daemon/log.hpp"
#include "tests/support/catch.hpp"

#include <algorithm>
#include <string>

using namespace hbsd::daemon;

namespace {

const std::string kBase = R"(
state_dir = "/var/lib/hbsd"
trust_anchors = "/etc/hbsd/trust"
registry_checks = true

[[module]]
name = "softhsm"
path = "/usr/lib/softhsm/libsofthsm2.so"

[[token_mapping]]
reader = "Virtual PCD*"
module = "softhsm"

[socket]
path = "/run/hbsd/hbsd.sock"
mode = 0o660

[limits]
worker_threads = 4
max_inflight = 64

[[access]]
user = 0
capabilities = ["admin"]
)";

bool has(const std::vector<std::string>& lines, const std::string& part) {
    return std::ranges::any_of(lines,
                               [&](const auto& l) { return l.find(part) != std::string::npos; });
}

}  // namespace

TEST_CASE("reload: the same file changes nothing") {
    const auto running = parse_config(kBase, "hbsd.toml");
    const auto p = plan_reload(running, parse_config(kBase, "hbsd.toml"));
    CHECK(p.kept.empty());
    CHECK(p.changed.empty());
    CHECK_FALSE(p.token_mapping_changed);
}

TEST_CASE("reload: access rules, limits, policy switches, mapping and trust go into force") {
    const auto running = parse_config(kBase, "hbsd.toml");
    std::string text = kBase;
    text.replace(text.find("registry_checks = true"), 22, "registry_checks = false");
    text.replace(text.find("max_inflight = 64"), 17,
                 "max_inflight = 8\nsession_ttl_max_s = 600\nsession_ttl_s = 60");
    text.replace(text.find("/etc/hbsd/trust"), 15, "/etc/hbsd/trust2");
    text.replace(text.find("Virtual PCD*"), 12, "Gemalto*");
    // Top-level keys before the first table (TOML would put them into the last one).
    text = "log_level = \"debug\"\ncrl_files = [\"/etc/hbsd/crl.pem\"]\n" + text +
           "\n[[access]]\nuser = 65534\ncapabilities = [\"sign\"]\n";
    const auto p = plan_reload(running, parse_config(text, "hbsd.toml"));
    CHECK(p.kept.empty());
    CHECK(p.config.access.size() == 2);
    CHECK(p.config.limits.max_inflight == 8);
    CHECK(p.config.limits.session_ttl_max_s == 600);
    CHECK_FALSE(p.config.registry_checks);
    CHECK(p.config.log_level == "debug");
    CHECK(*p.config.trust_anchors == "/etc/hbsd/trust2");
    CHECK(p.config.crl_files.size() == 1);
    REQUIRE(p.config.token_mapping.size() == 1);
    CHECK(p.config.token_mapping[0].reader == "Gemalto*");
    CHECK(p.token_mapping_changed);
    CHECK(has(p.changed, "[[access]]: 1 -> 2 rules"));
    CHECK(has(p.changed, "limits.max_inflight: 64 -> 8"));
    CHECK(has(p.changed, "registry_checks: on -> off"));
    CHECK(has(p.changed, "log_level: info -> debug"));
    CHECK(has(p.changed, "trust_anchors"));
    CHECK(has(p.changed, "crl_files"));
    CHECK(has(p.changed, "[[token_mapping]]"));
}

TEST_CASE("reload: restart-only settings keep their running values and are named") {
    const auto running = parse_config(kBase, "hbsd.toml");
    std::string text = kBase;
    text.replace(text.find("/var/lib/hbsd\""), 14, "/srv/hbsd\"");
    text.replace(text.find("/run/hbsd/hbsd.sock"), 19, "/run/other.sock");
    text.replace(text.find("mode = 0o660"), 12, "mode = 0o600");
    text.replace(text.find("worker_threads = 4"), 18, "worker_threads = 16\nmax_depth = 32");
    text.replace(text.find("libsofthsm2.so"), 14, "libother.so");
    const auto p = plan_reload(running, parse_config(text, "hbsd.toml"));
    CHECK(p.config.state_dir == "/var/lib/hbsd");
    CHECK(p.config.socket.path == "/run/hbsd/hbsd.sock");
    CHECK(p.config.socket.mode == 0660);
    CHECK(p.config.limits.worker_threads == 4);
    CHECK(p.config.modules[0].path == "/usr/lib/softhsm/libsofthsm2.so");
    CHECK(has(p.kept, "state_dir needs a restart, keeping /var/lib/hbsd"));
    CHECK(has(p.kept, "socket.path needs a restart, keeping /run/hbsd/hbsd.sock"));
    CHECK(has(p.kept, "socket.mode needs a restart, keeping 0660"));
    CHECK(has(p.kept, "limits.worker_threads needs a restart, keeping 4"));
    CHECK(has(p.kept, "[[module]] needs a restart, keeping softhsm"));
    CHECK(p.kept.size() == 5);
    // The reloadable change in the same file still goes into force.
    CHECK(p.config.limits.max_depth == 32);
    CHECK(has(p.changed, "limits.max_depth: 64 -> 32"));
}

TEST_CASE("reload: the PIN cache is restart-only") {
    // Turning it off by SIGHUP must not leave PINs cached behind a config that says "off".
    const auto running =
        parse_config(kBase + "\n[pin_cache]\nenabled = true\nttl_s = 300\n", "hbsd.toml");
    const auto p = plan_reload(
        running,
        parse_config(kBase + "\n[pin_cache]\nenabled = false\nmax_entries = 8\n", "hbsd.toml"));
    CHECK(p.config.pin_cache.enabled);
    CHECK(p.config.pin_cache.ttl_s == 300);
    CHECK(p.config.pin_cache.max_entries == 64);
    CHECK(has(p.kept, "pin_cache.enabled needs a restart, keeping true"));
    CHECK(has(p.kept, "pin_cache.ttl_s needs a restart, keeping 300"));
    CHECK(has(p.kept, "pin_cache.max_entries needs a restart, keeping 64"));
    CHECK(p.kept.size() == 3);
}

TEST_CASE("reload: a mapping that needs a watcher or module the process lacks is kept") {
    SECTION("no mapping at start-up: no PC/SC watcher runs") {
        std::string text = kBase;
        text.erase(text.find("[[token_mapping]]"),
                   text.find("[socket]") - text.find("[[token_mapping]]"));
        const auto running = parse_config(text, "hbsd.toml");
        const auto p = plan_reload(running, parse_config(kBase, "hbsd.toml"));
        CHECK(p.config.token_mapping.empty());
        CHECK_FALSE(p.token_mapping_changed);
        CHECK(has(p.kept, "[[token_mapping]] needs a restart when there was none"));
    }
    SECTION("a module added by the same file is not loaded") {
        std::string text = kBase;
        text.replace(text.find("[[token_mapping]]"), 17,
                     "[[module]]\nname = \"opensc\"\npath = \"/usr/lib/opensc-pkcs11.so\"\n\n"
                     "[[token_mapping]]");
        text.replace(text.find("module = \"softhsm\""), 18, "module = \"opensc\"");
        const auto running = parse_config(kBase, "hbsd.toml");
        const auto p = plan_reload(running, parse_config(text, "hbsd.toml"));
        CHECK(p.config.modules.size() == 1);
        CHECK(p.config.token_mapping[0].module == "softhsm");
        CHECK(has(p.kept, "[[module]] needs a restart"));
        CHECK(has(p.kept, "names module 'opensc', which is not loaded"));
    }
}

TEST_CASE("config: log_level is one of four names") {
    CHECK(parse_config("", "hbsd.toml").log_level == "info");
    CHECK(parse_config("log_level = \"warning\"", "hbsd.toml").log_level == "warning");
    try {
        parse_config("\nlog_level = \"verbose\"", "hbsd.toml");
        FAIL("accepted");
    } catch (const ConfigError& e) {
        CHECK(std::string(e.what()).rfind("hbsd.toml:2:", 0) == 0);
    }
    CHECK(log::level_from_name("debug") == log::Level::debug);
    CHECK_FALSE(log::level_from_name("DEBUG"));
}
