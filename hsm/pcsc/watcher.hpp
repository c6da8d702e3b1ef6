// hsm/pcsc: smart-card readers and cards as pcsc-lite sees them.
//
// The Watcher only observes: it never connects to a card, so it never takes a reader away from
// the PKCS#11 module (or any other program) that drives it. It runs one thread that blocks in
// SCardGetStatusChange on every reader plus the "\\?PnP?\Notification" pseudo reader, and turns
// what changed into events. It survives pcscd going away (socket-activated restarts, crashes):
// every reader is then reported removed, and the watcher re-establishes its context with
// backoff until pcscd answers again.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace hbsd::hsm::pcsc {

enum class EventKind { reader_added, reader_removed, card_inserted, card_removed };

// "reader_added", ...: the names used in logs and tests.
std::string_view to_string(EventKind kind) noexcept;

struct Event {
    EventKind kind = EventKind::reader_added;
    std::string reader;  // the PC/SC reader name, e.g. "Gemalto USB Shell Token V2 (1234) 00 00"
    // Lowercase hex of the card's ATR: the new card's for card_inserted, the departed card's
    // for card_removed (so that a listener can tell which card left); empty for reader events.
    std::string atr;
    std::chrono::system_clock::time_point time;
};

struct ReaderState {
    std::string name;
    bool present = false;  // a card is in the reader
    std::string atr;       // lowercase hex; empty when no card (or a mute one)
};

struct WatcherOptions {
    // How long one SCardGetStatusChange may block before the reader list is read again.
    // pcsc-lite 1.9 signals a new reader on the PnP pseudo reader only if the reader count
    // changes while the call waits, so a reader plugged in between listing and waiting would
    // otherwise be seen only at the next event; this bounds that delay.
    std::chrono::milliseconds rescan_interval{2000};
    // Reconnect backoff when pcscd is unreachable: doubles from initial up to max.
    std::chrono::milliseconds backoff_initial{100};
    std::chrono::milliseconds backoff_max{5000};
};

class Watcher {
  public:
    // Called on the watcher's own thread, one event at a time, in order, after readers()
    // already reflects the event. It must not block for long and must not destroy the Watcher;
    // an Asio user posts the event to its executor. Exceptions it throws are swallowed, so one
    // bad listener cannot stop the watching.
    using Callback = std::function<void(const Event&)>;

    // Starts the thread; readers already present are reported as reader_added (and cards in
    // them as card_inserted) as soon as pcscd answers. Throws hbsd::Error (Internal) only if
    // the thread cannot be started.
    explicit Watcher(Callback on_event, WatcherOptions options = {});
    // Stops promptly even while blocked in SCardGetStatusChange (SCardCancel); no events are
    // delivered after it returns.
    ~Watcher();

    Watcher(const Watcher&) = delete;
    Watcher& operator=(const Watcher&) = delete;
    Watcher(Watcher&&) = delete;
    Watcher& operator=(Watcher&&) = delete;

    // Thread-safe snapshot, sorted by name.
    std::vector<ReaderState> readers() const;
    // Whether pcscd answered the last attempt (false before the first contact).
    bool service_available() const;
    // pcsc-lite's text for the last failure to reach pcscd (e.g. "Service not available."),
    // for logs and Status; empty if there was none. Kept after pcscd answers again.
    std::string last_error() const;

  private:
    struct State;
    std::unique_ptr<State> state_;
};

}  // namespace hbsd::hsm::pcsc
