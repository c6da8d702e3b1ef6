// The D-Bus status object against a private dbus-daemon that this test starts with a copy of
// the system bus's default policy plus the shipped vn.hocbaso.Signer1.conf (its user="hbsd"
// replaced by the user running the test). A second sd-bus connection plays the desktop
// front-end: reads the properties, receives the signals, and is refused what the policy
// does not allow.
#include "systemd/bus.hpp"
#include "protocol/error.hpp"
#include "tests/support/catch.hpp"

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

namespace {

std::string read_file(const std::string& path) {
    std::ifstream f(path);
    std::stringstream s;
    s << f.rdbuf();
    return s.str();
}

// A dbus-daemon on a socket in a temporary directory, with system-bus rules.
class PrivateBus {
  public:
    PrivateBus() {
        char tmpl[] = "/tmp/hbsd-bus-XXXXXX";
        REQUIRE(::mkdtemp(tmpl));
        dir_ = tmpl;
        // Other users connect too (the policy test plays one).
        ::chmod(dir_.c_str(), 0755);
        std::string policy = read_file(HBSD_BUS_POLICY);
        const std::string from = "user=\"hbsd\"";
        const auto at = policy.find(from);
        REQUIRE(at != std::string::npos);
        const passwd* pw = ::getpwuid(::geteuid());
        REQUIRE(pw);
        policy.replace(at, from.size(), "user=\"" + std::string(pw->pw_name) + "\"");
        std::ofstream(dir_ + "/policy.conf") << policy;
        std::ofstream(dir_ + "/bus.conf")
            << R"(<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=)"
            << dir_ << R"(/bus</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
    <allow send_destination="org.freedesktop.DBus"
           send_interface="org.freedesktop.DBus.Introspectable"/>
    <allow send_destination="org.freedesktop.DBus"
           send_interface="org.freedesktop.DBus.Properties"/>
  </policy>
  <include>)"
            << dir_ << R"(/policy.conf</include>
</busconfig>
)";
        int p[2];
        REQUIRE(::pipe2(p, O_CLOEXEC) == 0);
        pid_ = ::fork();
        REQUIRE(pid_ >= 0);
        if (pid_ == 0) {
            ::dup2(p[1], 3);  // dup2 clears close-on-exec on the copy
            const std::string config = "--config-file=" + dir_ + "/bus.conf";
            ::execl(DBUS_DAEMON, "dbus-daemon", config.c_str(), "--nofork", "--nopidfile",
                    "--print-address=3", static_cast<char*>(nullptr));
            ::_exit(127);
        }
        ::close(p[1]);
        // The address line comes once the bus listens.
        char c;
        while (::read(p[0], &c, 1) == 1 && c != '\n') address_ += c;
        ::close(p[0]);
        REQUIRE(address_.rfind("unix:", 0) == 0);
    }
    ~PrivateBus() {
        stop();
        std::system(("rm -rf '" + dir_ + "'").c_str());
    }
    void stop() {
        if (pid_ <= 0) return;
        ::kill(pid_, SIGTERM);
        ::waitpid(pid_, nullptr, 0);
        pid_ = -1;
    }
    const std::string& address() const { return address_; }

  private:
    std::string dir_, address_;
    pid_t pid_ = -1;
};

// The front-end's side.
class Client {
  public:
    explicit Client(const std::string& address) {
        REQUIRE(sd_bus_new(&bus_) >= 0);
        REQUIRE(sd_bus_set_address(bus_, address.c_str()) >= 0);
        REQUIRE(sd_bus_set_bus_client(bus_, 1) >= 0);
        REQUIRE(sd_bus_start(bus_) >= 0);
    }
    ~Client() {
        for (auto* s : slots_) sd_bus_slot_unref(s);
        sd_bus_flush_close_unref(bus_);
    }
    sd_bus* get() { return bus_; }

    std::string get_string(const char* property) {
        sd_bus_error e = SD_BUS_ERROR_NULL;
        char* v = nullptr;
        const int r = sd_bus_get_property_string(bus_, StatusBus::kName, StatusBus::kPath,
                                                 StatusBus::kInterface, property, &e, &v);
        INFO((e.message ? e.message : ""));
        sd_bus_error_free(&e);
        REQUIRE(r >= 0);
        std::string s(v);
        std::free(v);
        return s;
    }
    template <typename T>
    T get(const char* property, char type) {
        sd_bus_error e = SD_BUS_ERROR_NULL;
        T v{};
        const int r = sd_bus_get_property_trivial(bus_, StatusBus::kName, StatusBus::kPath,
                                                  StatusBus::kInterface, property, &e, type, &v);
        INFO((e.message ? e.message : ""));
        sd_bus_error_free(&e);
        REQUIRE(r >= 0);
        return v;
    }

    // Calls `on` for every matching signal until it returns true or 5 s pass.
    using Handler = std::function<bool(sd_bus_message*)>;
    void match(const char* interface, const char* member, Handler* on) {
        sd_bus_slot* slot = nullptr;
        REQUIRE(sd_bus_match_signal(bus_, &slot, nullptr, StatusBus::kPath, interface, member,
                                    &Client::dispatch, on) >= 0);
        slots_.push_back(slot);
    }
    bool wait_until(const std::function<bool()>& done) {
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
        while (!done()) {
            if (std::chrono::steady_clock::now() > deadline) return false;
            const int r = sd_bus_process(bus_, nullptr);
            REQUIRE(r >= 0);
            if (r == 0) sd_bus_wait(bus_, 100000);
        }
        return true;
    }

  private:
    static int dispatch(sd_bus_message* m, void* userdata, sd_bus_error*) {
        (*static_cast<Handler*>(userdata))(m);
        return 0;
    }
    sd_bus* bus_ = nullptr;
    std::vector<sd_bus_slot*> slots_;
};

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
