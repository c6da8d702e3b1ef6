// A private dbus-daemon for tests (system-bus rules plus the shipped vn.hocbaso.Signer1.conf,
// its user="hbsd" replaced by the user running the test) and an sd-bus client playing the
// desktop front-end. Used by bus_test.cpp (the object alone) and daemon_bus_test.cpp (the real
// hbsd publishing it). Needs DBUS_DAEMON and HBSD_BUS_POLICY defined.
#pragma once

#include "systemd/bus.hpp"
#include "tests/support/catch.hpp"
#include "tests/support/temp_dir.hpp"

#include <fcntl.h>
#include <pwd.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <systemd/sd-bus.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

namespace hbsd::test {

using hbsd::systemd::StatusBus;

inline std::string read_text(const std::string& path) {
    std::ifstream f(path);
    std::stringstream s;
    s << f.rdbuf();
    return s.str();
}

// A dbus-daemon on a socket in a temporary directory, with system-bus rules.
class PrivateBus {
  public:
    PrivateBus() {
        std::string policy = read_text(HBSD_BUS_POLICY);
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
    ~PrivateBus() { stop(); }
    void stop() {
        if (pid_ <= 0) return;
        ::kill(pid_, SIGTERM);
        ::waitpid(pid_, nullptr, 0);
        pid_ = -1;
    }
    const std::string& address() const { return address_; }

  private:
    // First: removed last, after the destructor has stopped the dbus-daemon. Reachable: other
    // users connect too (the policy test plays one).
    hbsd::test::TempDir tmp_{"hbsd-bus-", hbsd::test::kReachable};
    std::string dir_ = tmp_.path().string(), address_;
    pid_t pid_ = -1;
};

// The front-end's side.
class BusClient {
  public:
    explicit BusClient(const std::string& address) {
        REQUIRE(sd_bus_new(&bus_) >= 0);
        REQUIRE(sd_bus_set_address(bus_, address.c_str()) >= 0);
        REQUIRE(sd_bus_set_bus_client(bus_, 1) >= 0);
        REQUIRE(sd_bus_start(bus_) >= 0);
    }
    ~BusClient() {
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
                                    &BusClient::dispatch, on) >= 0);
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

}  // namespace hbsd::test
