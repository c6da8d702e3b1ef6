// The real hbsd publishing its D-Bus status object on a private dbus-daemon (pointed at it with
// DBUS_SYSTEM_BUS_ADDRESS, as the system bus): a token leaving and coming back becomes the
// TokenRemoved / TokenInserted signals with the token's URI and reader, and TokensPresent
// follows (read, and announced with PropertiesChanged). Two ways for a token to come and go:
// a card in a vsmartcard-vpcd reader of a private pcscd (the token is mapped to that reader,
// as a principal's smart card is), and the PKCS#11 fault shim hiding the token (no pcscd).
#include "tests/cards/support.hpp"
#include "tests/support/catch.hpp"
#include "tests/systemd/private_bus.hpp"
#ifdef HBSD_HAVE_PCSC_RIG
#include "tests/support/vcard/rig.hpp"
#endif

#include <mutex>

using namespace hbsd;
using namespace hbsd::test;
using namespace hbsd::test::cards;
using hbsd::systemd::StatusBus;

namespace {

// What the front-end saw: the token signals in order, and TokensPresent as PropertiesChanged
// announced it.
struct Seen {
    std::vector<std::string> signals;  // "TokenInserted <uri> <reader>"
    std::vector<std::uint32_t> tokens_present;
};

class FrontEnd {
  public:
    explicit FrontEnd(const std::string& address) : bus_(address) {
        on_token_ = [this](sd_bus_message* m) {
            const char *uri = nullptr, *reader = nullptr;
            REQUIRE(sd_bus_message_read(m, "ss", &uri, &reader) >= 0);
            seen_.signals.push_back(std::string(sd_bus_message_get_member(m)) + " " + uri + " " +
                                    reader);
            return true;
        };
        on_changed_ = [this](sd_bus_message* m) {
            const char* iface = nullptr;
            REQUIRE(sd_bus_message_read(m, "s", &iface) >= 0);
            REQUIRE(sd_bus_message_enter_container(m, 'a', "{sv}") >= 0);
            while (sd_bus_message_enter_container(m, 'e', "sv") > 0) {
                const char* name = nullptr;
                REQUIRE(sd_bus_message_read(m, "s", &name) >= 0);
                if (std::string(name) == "TokensPresent") {
                    std::uint32_t n = 0;
                    REQUIRE(sd_bus_message_read(m, "v", "u", &n) >= 0);
                    seen_.tokens_present.push_back(n);
                } else {
                    REQUIRE(sd_bus_message_skip(m, "v") >= 0);
                }
                REQUIRE(sd_bus_message_exit_container(m) >= 0);
            }
            return true;
        };
        bus_.match(StatusBus::kInterface, "TokenInserted", &on_token_);
        bus_.match(StatusBus::kInterface, "TokenRemoved", &on_token_);
        bus_.match("org.freedesktop.DBus.Properties", "PropertiesChanged", &on_changed_);
    }

    // Processes bus messages until `done` holds (or 20 s pass).
    bool wait_until(const std::function<bool(const Seen&)>& done) {
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
        while (!done(seen_)) {
            if (std::chrono::steady_clock::now() > deadline) return false;
            const int r = sd_bus_process(bus_.get(), nullptr);
            REQUIRE(r >= 0);
            if (r == 0) sd_bus_wait(bus_.get(), 100000);
        }
        return true;
    }
    std::uint32_t tokens_present() { return bus_.get<std::uint32_t>("TokensPresent", 'u'); }
    std::string version() { return bus_.get_string("Version"); }
    Seen& seen() { return seen_; }

  private:
    BusClient bus_;
    BusClient::Handler on_token_, on_changed_;
    Seen seen_;
};

// Until the daemon's object is on the bus (it is published once the daemon serves).
bool published(Daemon& d) {
    for (int i = 0; i < 100; ++i) {
        if (d.log().find("D-Bus status object vn.hocbaso.Signer1 published") != std::string::npos)
            return true;
        std::this_thread::sleep_for(50ms);
    }
    return false;
}

bool has_signal(const Seen& s, const std::string& line) {
    return std::find(s.signals.begin(), s.signals.end(), line) != s.signals.end();
}

}  // namespace

#ifdef HBSD_HAVE_PCSC_RIG
TEST_CASE("dbus: a card inserted and removed - TokenInserted, TokenRemoved, TokensPresent") {
    PcscRig rig;  // before the daemon: it inherits PCSCLITE_CSOCK_NAME
    PrivateBus b;
    DaemonOptions o;
    o.setenv("DBUS_SYSTEM_BUS_ADDRESS", b.address());
    o.extra_config =
        "\n[[token_mapping]]\nreader = \"" + rig.reader(0) + "\"\nmodule = \"softhsm\"\n";
    Daemon d(o);
    REQUIRE(published(d));
    FrontEnd fe(b.address());
    CHECK(fe.version() == HBSD_VERSION);
    const std::string token = d.token_uri();

    // Until the daemon has seen the empty reader: the mapped token is not present.
    auto c = d.client();
    bool settled = false;
    for (int i = 0; i < 100 && !settled; ++i) {
        const auto reply = c.call(M("ListTokens"));  // kept: the loop reads into it
        for (const auto& t : reply.at("tokens").as_array())
            if (t.at("uri").as_string() == token)
                settled = t.as_object().contains("reader") && t.at("reader").is_string() &&
                          !t.at("present").as_bool();
        if (!settled) std::this_thread::sleep_for(100ms);
    }
    REQUIRE(settled);
    REQUIRE(fe.wait_until([&](const Seen&) { return fe.tokens_present() == 0; }));
    const std::size_t before = fe.seen().signals.size();

    rig.insert(0, "4a01");
    const std::string inserted = "TokenInserted " + token + " " + rig.reader(0);
    REQUIRE(fe.wait_until([&](const Seen& s) { return has_signal(s, inserted); }));
    CHECK(fe.seen().signals.size() == before + 1);
    REQUIRE(fe.wait_until(
        [](const Seen& s) { return !s.tokens_present.empty() && s.tokens_present.back() == 1; }));
    CHECK(fe.tokens_present() == 1);

    rig.remove(0);
    const std::string removed = "TokenRemoved " + token + " " + rig.reader(0);
    REQUIRE(fe.wait_until([&](const Seen& s) { return has_signal(s, removed); }));
    CHECK(fe.seen().signals.back() == removed);
    REQUIRE(fe.wait_until(
        [](const Seen& s) { return !s.tokens_present.empty() && s.tokens_present.back() == 0; }));
    CHECK(fe.tokens_present() == 0);
    CHECK(d.terminate() == 0);
}
#endif

TEST_CASE("dbus: a token that goes away and comes back (PKCS#11 fault shim, no pcscd)") {
    PrivateBus b;
    Daemon d(DaemonOptions().with_faults().setenv("DBUS_SYSTEM_BUS_ADDRESS", b.address()));
    REQUIRE(published(d));
    FrontEnd fe(b.address());
    const std::string token = d.token_uri();
    // The test token is the one token present, once the daemon has looked.
    REQUIRE(fe.wait_until([&](const Seen&) { return fe.tokens_present() == 1; }));

    d.set_faults("token_present=0\n");
    REQUIRE(fe.wait_until([&](const Seen& s) {
        return !s.signals.empty() && s.signals.back().rfind("TokenRemoved " + token + " ", 0) == 0;
    }));
    REQUIRE(fe.wait_until(
        [](const Seen& s) { return !s.tokens_present.empty() && s.tokens_present.back() == 0; }));

    d.set_faults("");
    REQUIRE(fe.wait_until([&](const Seen& s) {
        return s.signals.back().rfind("TokenInserted " + token + " ", 0) == 0;
    }));
    REQUIRE(fe.wait_until([](const Seen& s) { return s.tokens_present.back() == 1; }));
    CHECK(fe.tokens_present() == 1);
    CHECK(d.terminate() == 0);
}
