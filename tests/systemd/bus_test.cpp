// The D-Bus status object against a private dbus-daemon that this test starts with a copy of
// the system bus's default policy plus the shipped vn.hocbaso.Signer1.conf (its user="hbsd"
// replaced by the user running the test). A second sd-bus connection plays the desktop
// front-end: reads the properties, receives the signals, and is refused what the policy
// does not allow.
#include "systemd/bus.hpp"
#include "protocol/error.hpp"
#include "tests/support/catch.hpp"
#include "tests/systemd/private_bus.hpp"

#include <fcntl.h>
#include <pwd.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <systemd/sd-bus.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <thread>

using hbsd::systemd::BusSnapshot;
using hbsd::systemd::StatusBus;
using Client = hbsd::test::BusClient;
using hbsd::test::PrivateBus;

namespace {

struct Counters {
    std::atomic<std::uint32_t> tokens{1}, sessions{0};
    std::atomic<std::uint64_t> signatures{0};
    StatusBus::Snapshot snapshot() {
        return [this] {
            return BusSnapshot{"0.1.0-test", tokens.load(), sessions.load(), signatures.load()};
        };
    }
};

}  // namespace

TEST_CASE("bus: properties read through the daemon's snapshot", "[bus]") {
    PrivateBus b;
    Counters n;
    StatusBus status(n.snapshot(), b.address());
    Client c(b.address());
    CHECK(c.get_string("Version") == "0.1.0-test");
    CHECK(c.get<std::uint32_t>("TokensPresent", 'u') == 1);
    CHECK(c.get<std::uint32_t>("Sessions", 'u') == 0);
    CHECK(c.get<std::uint64_t>("Signatures", 't') == 0);
    n.signatures = 1ull << 40;  // beyond 32 bits: the property is a uint64
    n.sessions = 3;
    CHECK(c.get<std::uint64_t>("Signatures", 't') == 1ull << 40);
    CHECK(c.get<std::uint32_t>("Sessions", 'u') == 3);
    CHECK(status.connected());
}

TEST_CASE("bus: PropertiesChanged carries the new values", "[bus]") {
    PrivateBus b;
    Counters n;
    StatusBus status(n.snapshot(), b.address());
    Client c(b.address());
    std::string interface;
    std::uint64_t signatures = 0;
    std::uint32_t tokens = 0, sessions = 0;
    bool seen = false;
    Client::Handler on = [&](sd_bus_message* m) {
        const char* iface = nullptr;
        REQUIRE(sd_bus_message_read(m, "s", &iface) >= 0);
        interface = iface;
        REQUIRE(sd_bus_message_enter_container(m, 'a', "{sv}") >= 0);
        while (sd_bus_message_enter_container(m, 'e', "sv") > 0) {
            const char* name = nullptr;
            REQUIRE(sd_bus_message_read(m, "s", &name) >= 0);
            const std::string p = name;
            if (p == "Signatures")
                REQUIRE(sd_bus_message_read(m, "v", "t", &signatures) >= 0);
            else if (p == "TokensPresent")
                REQUIRE(sd_bus_message_read(m, "v", "u", &tokens) >= 0);
            else if (p == "Sessions")
                REQUIRE(sd_bus_message_read(m, "v", "u", &sessions) >= 0);
            else
                REQUIRE(sd_bus_message_skip(m, "v") >= 0);
            REQUIRE(sd_bus_message_exit_container(m) >= 0);
        }
        seen = true;
        return true;
    };
    c.match("org.freedesktop.DBus.Properties", "PropertiesChanged", &on);
    n.tokens = 2;
    n.sessions = 1;
    n.signatures = 42;
    status.properties_changed();
    REQUIRE(c.wait_until([&] { return seen; }));
    CHECK(interface == StatusBus::kInterface);
    CHECK(tokens == 2);
    CHECK(sessions == 1);
    CHECK(signatures == 42);
}

TEST_CASE("bus: TokenInserted and TokenRemoved signals", "[bus]") {
    PrivateBus b;
    Counters n;
    StatusBus status(n.snapshot(), b.address());
    Client c(b.address());
    std::vector<std::string> events;
    Client::Handler on = [&](sd_bus_message* m) {
        const char *uri = nullptr, *reader = nullptr;
        REQUIRE(sd_bus_message_read(m, "ss", &uri, &reader) >= 0);
        events.push_back(std::string(sd_bus_message_get_member(m)) + " " + uri + " " + reader);
        return true;
    };
    c.match(StatusBus::kInterface, "TokenInserted", &on);
    c.match(StatusBus::kInterface, "TokenRemoved", &on);
    // From another thread, as the daemon's PC/SC watcher would.
    std::thread([&] {
        status.token_inserted("pkcs11:token=HT%20card", "Gemalto USB Reader 00 00");
        status.token_removed("pkcs11:token=HT%20card", "Gemalto USB Reader 00 00");
    }).join();
    REQUIRE(c.wait_until([&] { return events.size() == 2; }));
    CHECK(events[0] == "TokenInserted pkcs11:token=HT%20card Gemalto USB Reader 00 00");
    CHECK(events[1] == "TokenRemoved pkcs11:token=HT%20card Gemalto USB Reader 00 00");
}

TEST_CASE("bus: the policy allows reading and nothing else", "[bus]") {
    PrivateBus b;
    Counters n;
    StatusBus status(n.snapshot(), b.address());
    Client c(b.address());

    // GetAll and Introspect are open to everyone.
    sd_bus_error e = SD_BUS_ERROR_NULL;
    sd_bus_message* reply = nullptr;
    CHECK(sd_bus_call_method(c.get(), StatusBus::kName, StatusBus::kPath,
                             "org.freedesktop.DBus.Properties", "GetAll", &e, &reply, "s",
                             StatusBus::kInterface) >= 0);
    reply = sd_bus_message_unref(reply);
    sd_bus_error_free(&e);
    CHECK(sd_bus_call_method(c.get(), StatusBus::kName, StatusBus::kPath,
                             "org.freedesktop.DBus.Introspectable", "Introspect", &e, &reply,
                             "") >= 0);
    const char* xml = nullptr;
    REQUIRE(sd_bus_message_read(reply, "s", &xml) >= 0);
    CHECK(std::string(xml).find("TokenInserted") != std::string::npos);
    reply = sd_bus_message_unref(reply);
    sd_bus_error_free(&e);

    // Set is refused by the bus itself, before the object sees it.
    CHECK(sd_bus_call_method(c.get(), StatusBus::kName, StatusBus::kPath,
                             "org.freedesktop.DBus.Properties", "Set", &e, &reply, "ssv",
                             StatusBus::kInterface, "Signatures", "t", std::uint64_t{7}) < 0);
    CHECK(sd_bus_error_has_name(&e, SD_BUS_ERROR_ACCESS_DENIED));
    sd_bus_error_free(&e);
    CHECK(n.signatures == 0);

    // A second owner of the name is a misconfiguration, reported at once.
    CHECK_THROWS_AS(StatusBus(n.snapshot(), b.address()), hbsd::Error);
}

TEST_CASE("bus: only the service user may own the name", "[bus]") {
    PrivateBus b;
    Counters n;
    // A process of another user (nobody) connects fine but is refused the name.
    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        if (::setgid(65534) != 0 || ::setuid(65534) != 0) ::_exit(3);
        try {
            StatusBus s(n.snapshot(), b.address());
            ::_exit(1);
        } catch (const hbsd::Error& e) {
            ::_exit(e.detail().find("request the name") != std::string::npos ? 0 : 2);
        } catch (...) {
            ::_exit(4);
        }
    }
    int st = 0;
    REQUIRE(::waitpid(pid, &st, 0) == pid);
    REQUIRE(WIFEXITED(st));
    if (WEXITSTATUS(st) == 3) {
        WARN("cannot become uid 65534 (not root?): policy for other users not checked");
        return;
    }
    CHECK(WEXITSTATUS(st) == 0);
}

TEST_CASE("bus: an unreachable bus is an hbsd::Error", "[bus]") {
    Counters n;
    CHECK_THROWS_AS(StatusBus(n.snapshot(), "unix:path=/nonexistent/hbsd-test-bus"), hbsd::Error);
}

TEST_CASE("bus: connected() turns false when the bus goes away", "[bus]") {
    PrivateBus b;
    Counters n;
    StatusBus status(n.snapshot(), b.address());
    CHECK(status.connected());
    b.stop();
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (status.connected() && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    CHECK_FALSE(status.connected());
    // Calls after that are dropped quietly; the destructor still returns.
    status.token_inserted("pkcs11:token=x", "r");
    status.properties_changed();
}
