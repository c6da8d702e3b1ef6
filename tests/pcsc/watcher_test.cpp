// hsm/pcsc Watcher against a real pcscd with vsmartcard-vpcd readers and emulated cards
// (ctest labels "pcsc" and "integration"). Each test case runs in its own process (catch
// discovery) with its own pcscd, socket and vpcd ports, so they may run in parallel.
#include "hsm/pcsc/watcher.hpp"

#include <netinet/in.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <sstream>
#include <thread>
#include <vector>

#include "hsm/pcsc/handles.hpp"
#include "hsm/pcsc/mapping.hpp"
#include "protocol/hex.hpp"
#include "tests/support/catch.hpp"
#include "tests/support/vcard/rig.hpp"

using namespace hbsd::hsm::pcsc;
using hbsd::test::PcscRig;
using hbsd::test::PcscRigOptions;
using namespace std::chrono_literals;

namespace {

// Waits are generous: a slow, shared CI machine must not fail a correct watcher. A broken one
// still fails, only later.
constexpr auto patience = 20s;

class EventLog {
  public:
    void add(const Event& e) {
        std::lock_guard lock(mutex_);
        events_.push_back(e);
        changed_.notify_all();
    }

    // The n-th (1-based) event of `kind` for `reader`, waiting for it up to `timeout`.
    std::optional<Event> wait(EventKind kind, const std::string& reader, std::size_t n = 1,
                              std::chrono::milliseconds timeout = patience) {
        std::optional<Event> found;
        {
            std::unique_lock lock(mutex_);
            changed_.wait_for(lock, timeout, [&] {
                std::size_t seen = 0;
                for (const auto& e : events_)
                    if (e.kind == kind && e.reader == reader && ++seen == n) {
                        found = e;
                        return true;
                    }
                return false;
            });
        }
        // Shown with the next failing assertion: what did arrive instead.
        if (!found)
            UNSCOPED_INFO("no " << to_string(kind) << " #" << n << " for '" << reader
                                << "'; events:\n"
                                << describe());
        return found;
    }

    std::size_t count(EventKind kind, const std::string& reader) const {
        std::lock_guard lock(mutex_);
        return static_cast<std::size_t>(std::count_if(events_.begin(), events_.end(), [&](auto& e) {
            return e.kind == kind && e.reader == reader;
        }));
    }

    std::vector<Event> all() const {
        std::lock_guard lock(mutex_);
        return events_;
    }

    std::string describe() const {
        std::ostringstream out;
        for (const auto& e : all())
            out << to_string(e.kind) << " '" << e.reader << "' " << e.atr << "\n";
        return out.str();
    }

  private:
    mutable std::mutex mutex_;
    std::condition_variable changed_;
    std::vector<Event> events_;
};

std::optional<ReaderState> state_of(const Watcher& w, const std::string& reader) {
    for (auto& r : w.readers())
        if (r.name == reader) return r;
    return std::nullopt;
}

// Polls a condition on the watcher's snapshot; for state that has no event of its own.
template <typename Pred>
bool eventually(Pred pred, std::chrono::milliseconds timeout = patience) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
        if (pred()) return true;
        std::this_thread::sleep_for(10ms);
    }
    return pred();
}

WatcherOptions fast() {
    WatcherOptions o;
    o.backoff_initial = 50ms;
    o.backoff_max = 500ms;
    return o;
}

std::vector<unsigned char> transmit(const ScardCard& card, std::vector<unsigned char> apdu) {
    const SCARD_IO_REQUEST* pci =
        card.protocol() == SCARD_PROTOCOL_T0 ? SCARD_PCI_T0 : SCARD_PCI_T1;
    std::vector<unsigned char> out(258);
    DWORD len = static_cast<DWORD>(out.size());
    const LONG rv = SCardTransmit(card.get(), pci, apdu.data(), static_cast<DWORD>(apdu.size()),
                                  nullptr, out.data(), &len);
    INFO(pcsc_stringify_error(rv));
    REQUIRE(rv == SCARD_S_SUCCESS);
    out.resize(len);
    return out;
}

}  // namespace

TEST_CASE("rig: pcscd lists both vpcd readers and the card answers over shared connections") {
    PcscRig rig;
    ScardContext ctx;
    REQUIRE(ctx.establish() == SCARD_S_SUCCESS);
    rig.insert(0, "HBSD-RIG-01");
    REQUIRE(rig.wait_card(0, true, patience));
    CHECK_FALSE(rig.wait_card(1, true, 300ms));

    // Two connections at once: shared access is what lets hbsd and a PKCS#11 module (or
    // another program) use one reader side by side.
    ScardCard first, second;
    REQUIRE(first.connect_shared(ctx, rig.reader(0).c_str()) == SCARD_S_SUCCESS);
    REQUIRE(second.connect_shared(ctx, rig.reader(0).c_str()) == SCARD_S_SUCCESS);

    using B = std::vector<unsigned char>;
    CHECK(transmit(first, {0x00, 0xA4, 0x04, 0x00, 0x08, 0xA0, 0x00, 0x00, 0x06, 0x48, 0x42, 0x53,
                           0x44}) == B{0x90, 0x00});
    CHECK(transmit(second, {0x00, 0xA4, 0x04, 0x00, 0x05, 0xA0, 0x00, 0x00, 0x00, 0x01}) ==
          B{0x6A, 0x82});
    const std::string serial = "HBSD-RIG-01";
    B expected(serial.begin(), serial.end());
    expected.push_back(0x90);
    expected.push_back(0x00);
    CHECK(transmit(second, {0x00, 0xCA, 0x01, 0x01, 0x00}) == expected);
    CHECK(transmit(first, {0x00, 0xCA, 0x9F, 0x7F, 0x00}) == B{0x6A, 0x88});

    // The ATR pcscd reports is the one the rig predicts.
    unsigned char atr[MAX_ATR_SIZE];
    DWORD atr_len = sizeof atr, state = 0, protocol = 0;
    char name[256];
    DWORD name_len = sizeof name;
    REQUIRE(SCardStatus(first.get(), name, &name_len, &state, &protocol, atr, &atr_len) ==
            SCARD_S_SUCCESS);
    CHECK(hbsd::to_hex(std::span<const unsigned char>(atr, atr_len)) ==
          PcscRig::atr_for_serial(serial));

    first.reset();
    second.reset();
    rig.remove(0);
    CHECK(rig.wait_card(0, false, patience));
}

TEST_CASE("rig: a vpcd port taken by someone else is replaced by a free one") {
    // Hold a port pair the way an unrelated program would, and pin the rig to it.
    std::vector<int> held;
    unsigned taken = 0;
    for (unsigned base = 31000; base < 31990 && !taken; base += 2) {
        std::vector<int> pair;
        for (unsigned p = base; p < base + 2; ++p) {
            int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
            sockaddr_in a{};
            a.sin_family = AF_INET;
            a.sin_port = htons(static_cast<std::uint16_t>(p));
            if (bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 && listen(s, 1) == 0) {
                pair.push_back(s);
            } else {
                close(s);
            }
        }
        if (pair.size() == 2) {
            taken = base;
            held = pair;
        } else {
            for (int s : pair) close(s);
        }
    }
    REQUIRE(taken != 0);
    setenv("HBSD_PCSC_RIG_PORT", std::to_string(taken).c_str(), 1);
    PcscRig rig;  // would throw if it could not move on
    unsetenv("HBSD_PCSC_RIG_PORT");
    for (int s : held) close(s);
    CHECK(rig.port(0) != taken);
    rig.insert(0, "MOVED");
    CHECK(rig.wait_card(0, true, patience));
}

TEST_CASE("watcher: readers present at start are reported without cards") {
    PcscRig rig;
    EventLog log;
    Watcher watcher([&](const Event& e) { log.add(e); }, fast());
    for (unsigned slot = 0; slot < PcscRig::slots; ++slot) {
        auto added = log.wait(EventKind::reader_added, rig.reader(slot));
        REQUIRE(added);
        CHECK(added->atr.empty());
        auto s = state_of(watcher, rig.reader(slot));
        REQUIRE(s);
        CHECK_FALSE(s->present);
    }
    CHECK(watcher.service_available());
    CHECK(watcher.readers().size() == PcscRig::slots);
    CHECK(log.count(EventKind::card_inserted, rig.reader(0)) == 0);
}

TEST_CASE("watcher: insert then remove then re-insert a card") {
    PcscRig rig;
    EventLog log;
    Watcher watcher([&](const Event& e) { log.add(e); }, fast());
    const std::string reader = rig.reader(0);
    REQUIRE(log.wait(EventKind::reader_added, reader));
    REQUIRE(log.wait(EventKind::reader_added, rig.reader(1)));

    const auto before = std::chrono::system_clock::now();
    rig.insert(0, "CARD-A");
    auto inserted = log.wait(EventKind::card_inserted, reader);
    REQUIRE(inserted);
    CHECK(inserted->atr == PcscRig::atr_for_serial("CARD-A"));
    CHECK(inserted->time >= before);
    auto s = state_of(watcher, reader);
    REQUIRE(s);
    CHECK(s->present);
    CHECK(s->atr == PcscRig::atr_for_serial("CARD-A"));

    rig.remove(0);
    auto removed = log.wait(EventKind::card_removed, reader);
    REQUIRE(removed);
    CHECK(removed->atr == PcscRig::atr_for_serial("CARD-A"));  // which card left
    s = state_of(watcher, reader);
    REQUIRE(s);
    CHECK_FALSE(s->present);
    CHECK(s->atr.empty());

    rig.insert(0, "CARD-B");
    auto again = log.wait(EventKind::card_inserted, reader, 2);
    REQUIRE(again);
    CHECK(again->atr == PcscRig::atr_for_serial("CARD-B"));
    CHECK(state_of(watcher, reader)->present);

    // The other slot saw nothing, and no reader came or went.
    CHECK(log.count(EventKind::card_inserted, rig.reader(1)) == 0);
    CHECK(log.count(EventKind::reader_removed, reader) == 0);
    CHECK(log.count(EventKind::card_inserted, reader) == 2);
    CHECK(log.count(EventKind::card_removed, reader) == 1);
}

TEST_CASE("watcher and mapping: the SoftHSM2 token mapped to the vpcd reader comes and goes") {
    // What ListTokens will do for a module that does not know its reader: the mapping says
    // which reader, the watcher whether a card is in it.
    const std::vector<ReaderMapping> config = {{"hbsd Test PCD*", "", "softhsm"}};
    PcscRig rig;
    EventLog log;
    Watcher watcher([&](const Event& e) { log.add(e); }, fast());
    REQUIRE(log.wait(EventKind::reader_added, rig.reader(1)));
    auto where = reader_for_token(config, watcher.readers(), "softhsm");
    REQUIRE(where);
    CHECK_FALSE(where->present);

    rig.insert(1, "SOFTHSM-TOKEN");
    auto inserted = log.wait(EventKind::card_inserted, rig.reader(1));
    REQUIRE(inserted);
    CHECK(module_for(config, inserted->reader) == "softhsm");
    where = reader_for_token(config, watcher.readers(), "softhsm");
    REQUIRE(where);
    CHECK(where->name == rig.reader(1));
    CHECK(where->present);

    rig.remove(1);
    REQUIRE(log.wait(EventKind::card_removed, rig.reader(1)));
    CHECK_FALSE(reader_for_token(config, watcher.readers(), "softhsm")->present);
}

TEST_CASE("watcher: two cards in two readers are told apart") {
    PcscRig rig;
    EventLog log;
    Watcher watcher([&](const Event& e) { log.add(e); }, fast());
    REQUIRE(log.wait(EventKind::reader_added, rig.reader(1)));
    rig.insert(0, "SEAL-0001");
    rig.insert(1, "PRINCIPAL-02");
    auto a = log.wait(EventKind::card_inserted, rig.reader(0));
    auto b = log.wait(EventKind::card_inserted, rig.reader(1));
    REQUIRE(a);
    REQUIRE(b);
    CHECK(a->atr == PcscRig::atr_for_serial("SEAL-0001"));
    CHECK(b->atr == PcscRig::atr_for_serial("PRINCIPAL-02"));
    rig.remove(1);
    REQUIRE(log.wait(EventKind::card_removed, rig.reader(1)));
    CHECK(state_of(watcher, rig.reader(0))->present);
    CHECK_FALSE(state_of(watcher, rig.reader(1))->present);
}

// Holds the watcher's thread inside the listener until opened.
class Gate {
  public:
    void open() {
        std::lock_guard lock(mutex_);
        open_ = true;
        cv_.notify_all();
    }
    void pass() {
        std::unique_lock lock(mutex_);
        cv_.wait(lock, [&] { return open_; });
    }

  private:
    std::mutex mutex_;
    std::condition_variable cv_;
    bool open_ = false;
};

TEST_CASE("watcher: a card swapped while the listener was busy is reported as two events") {
    PcscRig rig;
    EventLog log;
    // The listener stays busy in the insertion of the card with the armed ATR, so the watcher
    // is not waiting on pcscd meanwhile. Keyed by ATR: arming for the next phase must not
    // catch an event of the previous one still on its way.
    std::mutex arm_mutex;
    std::string armed_atr;
    Gate* armed = nullptr;
    Gate busy, busy_again;  // outlive the watcher: its thread may be inside one
    auto arm = [&](const std::string& serial, Gate& gate) {
        std::lock_guard lock(arm_mutex);
        armed_atr = PcscRig::atr_for_serial(serial);
        armed = &gate;
    };
    Watcher watcher(
        [&](const Event& e) {
            log.add(e);
            Gate* g = nullptr;
            {
                std::lock_guard lock(arm_mutex);
                if (e.kind == EventKind::card_inserted && armed && e.atr == armed_atr)
                    g = std::exchange(armed, nullptr);
            }
            if (g) g->pass();
        },
        fast());
    // Destroyed first: a failing REQUIRE must not leave the Watcher's destructor waiting for a
    // listener stuck in a gate.
    struct OpenGates {
        Gate& a;
        Gate& b;
        ~OpenGates() {
            a.open();
            b.open();
        }
    } open_gates{busy, busy_again};
    arm("FIRST", busy);
    const std::string reader = rig.reader(0);
    REQUIRE(log.wait(EventKind::reader_added, reader));

    rig.insert(0, "FIRST");
    REQUIRE(log.wait(EventKind::card_inserted, reader));
    // The listener is stuck in the first event; swap the card under pcscd's eyes.
    rig.remove(0);
    REQUIRE(rig.wait_card(0, false, patience));
    rig.insert(0, "SECOND");
    REQUIRE(rig.wait_card(0, true, patience));
    busy.open();

    auto removed = log.wait(EventKind::card_removed, reader);
    auto inserted = log.wait(EventKind::card_inserted, reader, 2);
    REQUIRE(removed);
    REQUIRE(inserted);
    CHECK(removed->atr == PcscRig::atr_for_serial("FIRST"));
    CHECK(inserted->atr == PcscRig::atr_for_serial("SECOND"));
    CHECK(state_of(watcher, reader)->atr == PcscRig::atr_for_serial("SECOND"));

    // The same card pulled and pushed back while the listener was busy: the ATR is unchanged,
    // only pcsc-lite's event counter tells.
    arm("SAME", busy_again);
    rig.remove(0);
    REQUIRE(log.wait(EventKind::card_removed, reader, 2));
    rig.insert(0, "SAME");
    REQUIRE(log.wait(EventKind::card_inserted, reader, 3));
    rig.remove(0);
    REQUIRE(rig.wait_card(0, false, patience));
    rig.insert(0, "SAME");
    REQUIRE(rig.wait_card(0, true, patience));
    busy_again.open();
    CHECK(log.wait(EventKind::card_removed, reader, 3));
    auto same = log.wait(EventKind::card_inserted, reader, 4);
    REQUIRE(same);
    CHECK(same->atr == PcscRig::atr_for_serial("SAME"));
}

TEST_CASE("watcher: a card already inserted at start is reported after its reader") {
    PcscRig rig;
    rig.insert(1, "EARLY");
    REQUIRE(rig.wait_card(1, true, patience));
    EventLog log;
    Watcher watcher([&](const Event& e) { log.add(e); }, fast());
    auto inserted = log.wait(EventKind::card_inserted, rig.reader(1));
    REQUIRE(inserted);
    CHECK(inserted->atr == PcscRig::atr_for_serial("EARLY"));
    const auto events = log.all();
    auto pos = [&](EventKind k) {
        return std::find_if(events.begin(), events.end(),
                            [&](auto& e) { return e.kind == k && e.reader == rig.reader(1); });
    };
    CHECK(pos(EventKind::reader_added) < pos(EventKind::card_inserted));
}

TEST_CASE("watcher: pcscd restarted - readers and card go and come back") {
    PcscRig rig;
    rig.insert(0, "STAYS-IN");
    EventLog log;
    Watcher watcher([&](const Event& e) { log.add(e); }, fast());
    const std::string reader = rig.reader(0);
    REQUIRE(log.wait(EventKind::card_inserted, reader));

    rig.stop_pcscd();
    // With pcscd gone every session on the card is gone too: the card is reported removed
    // before its reader.
    auto card_gone = log.wait(EventKind::card_removed, reader);
    auto reader_gone = log.wait(EventKind::reader_removed, reader);
    REQUIRE(card_gone);
    REQUIRE(reader_gone);
    REQUIRE(log.wait(EventKind::reader_removed, rig.reader(1)));
    CHECK(eventually([&] { return !watcher.service_available(); }));
    CHECK(watcher.readers().empty());

    rig.start_pcscd();
    auto back = log.wait(EventKind::reader_added, reader, 2);
    REQUIRE(back);
    REQUIRE(log.wait(EventKind::reader_added, rig.reader(1), 2));
    // The card never left the reader; it reconnects to the new pcscd.
    auto card_back = log.wait(EventKind::card_inserted, reader, 2);
    REQUIRE(card_back);
    CHECK(card_back->atr == PcscRig::atr_for_serial("STAYS-IN"));
    CHECK(watcher.service_available());
    CHECK(state_of(watcher, reader)->present);

    // And it keeps watching: a removal after the restart is seen.
    rig.remove(0);
    CHECK(log.wait(EventKind::card_removed, reader, 2));
}

TEST_CASE("watcher: pcscd crashed (SIGKILL) and started again") {
    PcscRig rig;
    rig.insert(1, "CRASH-PROOF");
    EventLog log;
    Watcher watcher([&](const Event& e) { log.add(e); }, fast());
    const std::string reader = rig.reader(1);
    REQUIRE(log.wait(EventKind::card_inserted, reader));

    rig.stop_pcscd(SIGKILL);
    REQUIRE(log.wait(EventKind::card_removed, reader));
    REQUIRE(log.wait(EventKind::reader_removed, reader));
    CHECK(eventually([&] { return !watcher.service_available(); }));

    rig.start_pcscd();
    auto card_back = log.wait(EventKind::card_inserted, reader, 2);
    REQUIRE(card_back);
    CHECK(card_back->atr == PcscRig::atr_for_serial("CRASH-PROOF"));
    CHECK(watcher.service_available());
}

TEST_CASE("watcher: started before pcscd it connects once pcscd runs") {
    PcscRigOptions options;
    options.start = false;
    PcscRig rig(options);
    EventLog log;
    Watcher watcher([&](const Event& e) { log.add(e); }, fast());
    // Nothing to see yet, and nothing invented.
    CHECK_FALSE(eventually([&] { return watcher.service_available(); }, 300ms));
    CHECK(watcher.readers().empty());
    CHECK(log.all().empty());

    rig.start_pcscd();
    REQUIRE(log.wait(EventKind::reader_added, rig.reader(0)));
    REQUIRE(log.wait(EventKind::reader_added, rig.reader(1)));
    CHECK(watcher.service_available());
}

TEST_CASE("watcher: pcscd without readers then restarted with one") {
    PcscRigOptions options;
    options.with_reader = false;
    PcscRig rig(options);
    EventLog log;
    Watcher watcher([&](const Event& e) { log.add(e); }, fast());
    // SCARD_E_NO_READERS_AVAILABLE is a state, not an error: the service is there.
    REQUIRE(eventually([&] { return watcher.service_available(); }));
    CHECK(watcher.readers().empty());
    CHECK(log.all().empty());

    rig.stop_pcscd();
    rig.configure_reader(true);
    rig.start_pcscd();
    rig.insert(0, "LATE");
    REQUIRE(log.wait(EventKind::reader_added, rig.reader(0)));
    auto inserted = log.wait(EventKind::card_inserted, rig.reader(0));
    REQUIRE(inserted);
    CHECK(inserted->atr == PcscRig::atr_for_serial("LATE"));
}

TEST_CASE("watcher: a throwing listener does not stop the watching") {
    PcscRig rig;
    EventLog log;
    Watcher watcher(
        [&](const Event& e) {
            log.add(e);
            throw std::runtime_error("listener bug");
        },
        fast());
    REQUIRE(log.wait(EventKind::reader_added, rig.reader(1)));
    rig.insert(0, "AFTER-THROW");
    CHECK(log.wait(EventKind::card_inserted, rig.reader(0)));
    CHECK(state_of(watcher, rig.reader(0))->present);
}

TEST_CASE("watcher: idle it waits in pcscd instead of spinning") {
    PcscRig rig;
    rig.insert(0, "IDLE");
    EventLog log;
    WatcherOptions options = fast();
    options.rescan_interval = 200ms;  // rescans included
    Watcher watcher([&](const Event& e) { log.add(e); }, options);
    REQUIRE(log.wait(EventKind::card_inserted, rig.reader(0)));
    REQUIRE(log.wait(EventKind::reader_added, rig.reader(1)));
    const auto events = log.all().size();
    auto cpu = [] {
        rusage u{};
        getrusage(RUSAGE_SELF, &u);
        return std::chrono::seconds(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
               std::chrono::microseconds(u.ru_utime.tv_usec + u.ru_stime.tv_usec);
    };
    const auto before = cpu();
    std::this_thread::sleep_for(1500ms);  // the window measured, not an assertion on timing
    const auto used = cpu() - before;
    CHECK(used < 300ms);
    CHECK(log.all().size() == events);  // nothing happened, nothing reported
}

TEST_CASE("watcher: the destructor returns promptly while blocked in SCardGetStatusChange") {
    PcscRig rig;
    EventLog log;
    WatcherOptions options = fast();
    // Without SCardCancel the destructor would wait for this timeout.
    options.rescan_interval = 60s;
    auto watcher = std::make_unique<Watcher>([&](const Event& e) { log.add(e); }, options);
    REQUIRE(log.wait(EventKind::reader_added, rig.reader(1)));
    // Setup, not an assertion: give the thread time to enter its wait.
    std::this_thread::sleep_for(300ms);
    const auto start = std::chrono::steady_clock::now();
    watcher.reset();
    const auto took = std::chrono::steady_clock::now() - start;
    CHECK(took < 3s);
    // No event after destruction.
    const auto events = log.all().size();
    rig.insert(0, "NOBODY-WATCHING");
    REQUIRE(rig.wait_card(0, true, patience));
    CHECK(log.all().size() == events);
}

TEST_CASE("watcher: the destructor returns promptly while pcscd is unreachable") {
    PcscRigOptions rig_options;
    rig_options.start = false;
    PcscRig rig(rig_options);  // sets the socket path; nothing listens on it
    WatcherOptions options;
    options.backoff_initial = 60s;
    options.backoff_max = 60s;
    auto watcher = std::make_unique<Watcher>(nullptr, options);
    REQUIRE(eventually([&] { return !watcher->last_error().empty(); }));
    CHECK_FALSE(watcher->service_available());
    CHECK(watcher->last_error() == pcsc_stringify_error(SCARD_E_NO_SERVICE));
    std::this_thread::sleep_for(100ms);  // setup: into its backoff wait
    const auto start = std::chrono::steady_clock::now();
    watcher.reset();
    CHECK(std::chrono::steady_clock::now() - start < 3s);
}
