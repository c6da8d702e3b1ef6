// Unit tests of the cards issue's daemon parts that need no daemon: the EventBus (bounded
// queues, a slow watcher loses its oldest events and never blocks a publisher) and the
// [[token_mapping]] configuration.
#include "daemon/config.hpp"
#include "daemon/events.hpp"
#include "tests/support/catch.hpp"

#include <thread>

using namespace hbsd::daemon;
using namespace std::chrono_literals;

namespace {

Event signed_event(int n) {
    return {"signed", std::nullopt, std::nullopt, "R" + std::to_string(n), std::nullopt};
}

}  // namespace

TEST_CASE("events.bus: every subscriber gets every event, in order") {
    EventBus bus(16);
    auto a = bus.subscribe();
    auto b = bus.subscribe();
    for (int i = 0; i < 5; ++i) bus.publish(signed_event(i));
    for (auto* s : {&a, &b}) {
        std::uint64_t dropped = 99;
        const auto got = (*s)->take(100, dropped);
        REQUIRE(got.size() == 5);
        CHECK(dropped == 0);
        for (int i = 0; i < 5; ++i)
            CHECK(got[static_cast<std::size_t>(i)].event.record == "R" + std::to_string(i));
    }
}

TEST_CASE("events.bus: a slow watcher loses the oldest events, and is told how many") {
    EventBus bus(4);
    auto slow = bus.subscribe();
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < 1000; ++i) bus.publish(signed_event(i));
    // Publishing never waits for a reader.
    CHECK(std::chrono::steady_clock::now() - t0 < 1s);
    std::uint64_t dropped = 0;
    const auto got = slow->take(100, dropped);
    REQUIRE(got.size() == 4);
    CHECK(dropped == 996);
    CHECK(got.front().event.record == "R996");
    CHECK(got.back().event.record == "R999");
    slow->take(100, dropped);
    CHECK(dropped == 0);
}

TEST_CASE("events.bus: a dropped or closed subscription is skipped") {
    EventBus bus;
    int notified = 0;
    {
        auto gone = bus.subscribe([&] { ++notified; });
        bus.publish(signed_event(1));
        CHECK(bus.watchers() == 1);
    }
    bus.publish(signed_event(2));
    CHECK(notified == 1);
    CHECK(bus.watchers() == 0);
    auto closed = bus.subscribe();
    closed->close();
    bus.publish(signed_event(3));
    std::uint64_t dropped = 0;
    CHECK(closed->take(10, dropped).empty());
}

TEST_CASE("events.bus: next() waits for an event from another thread") {
    EventBus bus;
    auto s = bus.subscribe();
    std::thread t([&] {
        std::this_thread::sleep_for(50ms);
        bus.publish(signed_event(7));
    });
    const auto e = s->next(5s);
    t.join();
    REQUIRE(e);
    CHECK(e->event.kind == "signed");
    CHECK(!s->next(10ms));
}

TEST_CASE("config: [[token_mapping]] is read and checked") {
    const std::string modules = "[[module]]\nname = \"opensc\"\npath = \"/x/opensc.so\"\n";
    auto c = parse_config(modules +
                              "[[token_mapping]]\nreader = \"Gemalto*\"\nmodule = \"opensc\"\n"
                              "[[token_mapping]]\ntoken_serial = \"0011\"\nmodule = \"opensc\"\n",
                          "t.toml");
    REQUIRE(c.token_mapping.size() == 2);
    CHECK(c.token_mapping[0].reader == "Gemalto*");
    CHECK(c.token_mapping[1].token_serial == "0011");
    auto refused = [&](const std::string& text) {
        try {
            parse_config(modules + text, "t.toml");
        } catch (const ConfigError& e) {
            return std::string(e.what());
        }
        return std::string("accepted");
    };
    CHECK(refused("[[token_mapping]]\nreader = \"R\"\nmodule = \"nope\"\n").find("names no") !=
          std::string::npos);
    CHECK(refused("[[token_mapping]]\nmodule = \"opensc\"\n").find("reader") != std::string::npos);
    CHECK(refused("[[token_mapping]]\nreader = \"R\"\n").find("module") != std::string::npos);
    CHECK(refused("[[token_mapping]]\nreader = \"R\"\nmodule = \"opensc\"\nslot = 1\n")
              .find("unknown key") != std::string::npos);
}
