#include "daemon/config.hpp"
#include "tests/support/catch.hpp"

#include <string>

using namespace hbsd::daemon;

namespace {

// The message of the ConfigError `text` raises, or "" when it parses.
std::string error_of(const std::string& text) {
    try {
        parse_config(text, "hbsd.toml");
    } catch (const ConfigError& e) {
        return e.what();
    }
    return "";
}

}  // namespace

TEST_CASE("config: defaults") {
    const auto c = parse_config("", "hbsd.toml");
    CHECK(c.socket.path == "/run/hbsd/hbsd.sock");
    CHECK(c.socket.mode == 0660);
    CHECK(c.limits.max_frame_bytes == 32u << 20);
    CHECK(c.limits.max_document_bytes == 8u << 20);
    CHECK(c.limits.max_depth == 64);
    CHECK(c.state_dir == "/var/lib/hbsd");
    CHECK(c.access.empty());
    CHECK_FALSE(c.trust_anchors);
}

TEST_CASE("config: a full file") {
    const auto c = parse_config(R"(
state_dir = "/var/lib/hbsd-test"
trust_anchors = "/etc/hbsd/trust"
crl_files = ["/etc/hbsd/crl/a.crl"]

[[module]]
name = "softhsm"
path = "/usr/lib/softhsm/libsofthsm2.so"

[[module]]
name = "opensc"
path = "/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so"

[socket]
path = "/run/hbsd/x.sock"
mode = "0600"
group = "root"

[limits]
max_frame_bytes = 1048576
max_document_bytes = 65536
idle_timeout_s = 5
session_ttl_s = 60
session_ttl_max_s = 120
worker_threads = 2

[[access]]
user = "root"
capabilities = ["sign"]

[[access]]
group = 0
capabilities = ["read"]

[[access]]
user = 4242
capabilities = ["admin"]
)",
                                "hbsd.toml");
    REQUIRE(c.modules.size() == 2);
    CHECK(c.modules[1].name == "opensc");
    CHECK(c.socket.mode == 0600);
    CHECK(c.socket.group == "root");
    CHECK(c.limits.max_frame_bytes == 1048576);
    CHECK(c.limits.worker_threads == 2);
    CHECK(c.crl_files.size() == 1);
    REQUIRE(c.access.size() == 3);
    CHECK(c.access[0].uid == 0u);
    // sign implies read; admin implies everything.
    CHECK(c.access[0].capabilities == (closure(Capability::sign)));
    CHECK(allows(c.access[0].capabilities, Capability::read));
    CHECK_FALSE(allows(c.access[0].capabilities, Capability::admin));
    CHECK(c.access[1].gid == 0u);
    CHECK(allows(c.access[2].capabilities, Capability::sign));
    CHECK(c.access[0].origin == "hbsd.toml:27");
}

TEST_CASE("config: errors name file line and column") {
    CHECK(error_of("[limits]\nmax_frame_bytes = 10\n") ==
          "hbsd.toml:2:19: max_frame_bytes must be between 1024 and 1073741824");
    CHECK(error_of("[limits]\nmax_conections = 10\n") ==
          "hbsd.toml:2:1: unknown key 'max_conections' in [limits]");
    CHECK(error_of("socket_path = \"/x\"\n") ==
          "hbsd.toml:1:1: unknown key 'socket_path' in the top level");
    CHECK(
        error_of("[socket]\npath = 5\n").rfind("hbsd.toml:2:8: socket.path must be a string", 0) ==
        0);
    CHECK(error_of("[socket]\npath = \"relative.sock\"\n") ==
          "hbsd.toml:2:8: socket.path must be an absolute path");
    CHECK(error_of("[[access]]\nuser = \"root\"\ncapabilities = [\"sing\"]\n") ==
          "hbsd.toml:3:17: unknown capability 'sing' (read, sign, admin)");
    CHECK(error_of("[[access]]\nuser = \"no-such-user-hbsd\"\ncapabilities = [\"read\"]\n") ==
          "hbsd.toml:2:8: no such user 'no-such-user-hbsd'");
    CHECK(error_of("[[access]]\ncapabilities = [\"read\"]\n")
              .rfind("hbsd.toml:1:1: [[access]] needs exactly one of user or group", 0) == 0);
    CHECK(
        error_of(
            "[[module]]\nname = \"a\"\npath = \"/x\"\n[[module]]\nname = \"a\"\npath = \"/y\"\n") ==
        "hbsd.toml:5:8: duplicate module name 'a'");
    CHECK(error_of("[limits]\nsession_ttl_s = 100\nsession_ttl_max_s = 50\n")
              .find("session_ttl_s must not exceed session_ttl_max_s") != std::string::npos);
}

TEST_CASE("config: TOML syntax errors carry the position toml++ reports") {
    const auto e = error_of("[limits\nmax_depth = 3\n");
    CHECK(e.rfind("hbsd.toml:1:", 0) == 0);
}

TEST_CASE("config: load_config reports a missing file") {
    CHECK_THROWS_AS(load_config("/nonexistent/hbsd.toml"), ConfigError);
}

TEST_CASE("config: the shipped example parses to the defaults") {
    const auto c = load_config(HBSD_CONFIG_EXAMPLE);
    const Config d;
    CHECK(c.socket.path == d.socket.path);
    CHECK(c.socket.mode == d.socket.mode);
    CHECK(c.limits.max_frame_bytes == d.limits.max_frame_bytes);
    CHECK(c.limits.max_document_bytes == d.limits.max_document_bytes);
    CHECK(c.limits.max_inflight == d.limits.max_inflight);
    CHECK(c.limits.session_ttl_max_s == d.limits.session_ttl_max_s);
    CHECK(c.limits.idempotency_entries == d.limits.idempotency_entries);
    CHECK(c.state_dir == d.state_dir);
}
