#include "hsm/pcsc/watcher.hpp"

#include <winscard.h>

#include <algorithm>
#include <condition_variable>
#include <map>
#include <mutex>
#include <system_error>
#include <thread>

#include "hsm/pcsc/handles.hpp"
#include "protocol/error.hpp"
#include "protocol/hex.hpp"

namespace hbsd::hsm::pcsc {

namespace {

constexpr char pnp_reader[] = "\\\\?PnP?\\Notification";

// What the thread remembers of one reader between two SCardGetStatusChange calls.
struct Known {
    // The last dwEventState, fed back as dwCurrentState: it carries pcsc-lite's per-reader event
    // counter in its upper 16 bits, so a card pulled and another pushed in between two calls is
    // still seen as a change.
    DWORD state = SCARD_STATE_UNAWARE;
    bool present = false;
    std::string atr;
};

// Errors after which the context is useless and pcscd must be contacted afresh.
bool service_lost(LONG rv) noexcept {
    switch (rv) {
        case SCARD_E_NO_SERVICE:
        case SCARD_E_SERVICE_STOPPED:
        case SCARD_E_INVALID_HANDLE:
        case SCARD_F_COMM_ERROR:
        case SCARD_F_INTERNAL_ERROR:
        case SCARD_E_NO_MEMORY:
            return true;
        default:
            return false;
    }
}

}  // namespace

std::string_view to_string(EventKind kind) noexcept {
    switch (kind) {
        case EventKind::reader_added:
            return "reader_added";
        case EventKind::reader_removed:
            return "reader_removed";
        case EventKind::card_inserted:
            return "card_inserted";
        case EventKind::card_removed:
            return "card_removed";
    }
    return "unknown";
}

struct Watcher::State {
    Callback on_event;
    WatcherOptions options;

    mutable std::mutex mutex;
    std::condition_variable wake;  // stop requested (ends backoff waits)
    std::condition_variable done_cv;
    bool stop = false;
    bool done = false;
    // The context the thread is blocked on, published so that the destructor can SCardCancel
    // it. The thread releases a context only after unpublishing it under `mutex`, so a cancel
    // never races a release.
    SCARDCONTEXT published = 0;
    bool available = false;
    std::string last_error;
    std::map<std::string, ReaderState> snapshot;

    // Touched by the watcher thread only.
    std::map<std::string, Known> known;

    std::thread thread;

    bool stopping() const {
        std::lock_guard lock(mutex);
        return stop;
    }

    // Updates the snapshot, then tells the listener: a callback that asks for readers() sees
    // the state the event describes.
    void emit(EventKind kind, const std::string& reader, const std::string& atr) {
        {
            std::lock_guard lock(mutex);
            switch (kind) {
                case EventKind::reader_added:
                    snapshot[reader] = ReaderState{reader, false, {}};
                    break;
                case EventKind::reader_removed:
                    snapshot.erase(reader);
                    break;
                case EventKind::card_inserted:
                    snapshot[reader] = ReaderState{reader, true, atr};
                    break;
                case EventKind::card_removed:
                    snapshot[reader] = ReaderState{reader, false, {}};
                    break;
            }
        }
        if (!on_event) return;
        Event event{kind, reader, atr, std::chrono::system_clock::now()};
        try {
            on_event(event);
        } catch (...) {
            // A listener's failure is its own; the readers are still there to be watched.
        }
    }

    // `rv`: why pcscd is not available (SCARD_S_SUCCESS: it is).
    void set_available(bool value, LONG rv = SCARD_S_SUCCESS) {
        std::lock_guard lock(mutex);
        available = value;
        if (rv != SCARD_S_SUCCESS) last_error = pcsc_stringify_error(rv);
    }

    // By value: callers pass keys of `known`, which the erase below would free.
    void forget(std::string name) {
        auto it = known.find(name);
        if (it == known.end()) return;
        const bool had_card = it->second.present;
        const std::string atr = it->second.atr;
        known.erase(it);
        if (had_card) emit(EventKind::card_removed, name, atr);
        emit(EventKind::reader_removed, name, {});
    }

    // pcscd is gone: so is every reader it served, and with it every card session.
    void forget_all() {
        while (!known.empty()) forget(known.begin()->first);
    }

    // Waits `delay` or until stop; true if stopping.
    bool sleep_for(std::chrono::milliseconds delay) {
        std::unique_lock lock(mutex);
        return wake.wait_for(lock, delay, [&] { return stop; });
    }

    LONG list_readers(const ScardContext& context, std::vector<std::string>& names) {
        names.clear();
        // The list can change between the size query and the read; SCARD_AUTOALLOCATE would
        // avoid that but needs SCardFreeMemory bookkeeping, so retry on a short buffer instead.
        for (int attempt = 0; attempt < 4; ++attempt) {
            DWORD size = 0;
            LONG rv = SCardListReaders(context.get(), nullptr, nullptr, &size);
            if (rv == SCARD_E_NO_READERS_AVAILABLE) return SCARD_S_SUCCESS;
            if (rv != SCARD_S_SUCCESS) return rv;
            std::string buffer(size, '\0');
            rv = SCardListReaders(context.get(), nullptr, buffer.data(), &size);
            if (rv == SCARD_E_INSUFFICIENT_BUFFER) continue;
            if (rv == SCARD_E_NO_READERS_AVAILABLE) return SCARD_S_SUCCESS;
            if (rv != SCARD_S_SUCCESS) return rv;
            buffer.resize(std::min<std::size_t>(size, buffer.size()));
            // A multi-string: names separated by NUL, ended by an empty name.
            for (std::size_t pos = 0; pos < buffer.size();) {
                const std::size_t end = buffer.find('\0', pos);
                const std::size_t stop_at = end == std::string::npos ? buffer.size() : end;
                if (stop_at == pos) break;
                names.emplace_back(buffer, pos, stop_at - pos);
                pos = stop_at + 1;
            }
            return SCARD_S_SUCCESS;
        }
        return SCARD_E_INSUFFICIENT_BUFFER;
    }

    // Brings `known` in line with pcscd's reader list.
    void reconcile(const std::vector<std::string>& names) {
        std::vector<std::string> gone;
        for (const auto& [name, k] : known)
            if (std::find(names.begin(), names.end(), name) == names.end()) gone.push_back(name);
        for (const auto& name : gone) forget(name);
        for (const auto& name : names) {
            if (known.contains(name)) continue;
            known.emplace(name, Known{});
            emit(EventKind::reader_added, name, {});
        }
    }

    void observe(const SCARD_READERSTATE& rs) {
        auto it = known.find(rs.szReader);
        if (it == known.end()) return;
        Known& k = it->second;
        const DWORD ev = rs.dwEventState;
        if (ev & (SCARD_STATE_UNKNOWN | SCARD_STATE_IGNORE)) return;  // gone: the next listing
        const bool present = (ev & SCARD_STATE_PRESENT) && !(ev & SCARD_STATE_UNAVAILABLE);
        const std::size_t atr_len = std::min<std::size_t>(rs.cbAtr, sizeof rs.rgbAtr);
        std::string atr =
            present ? to_hex(std::span<const unsigned char>(rs.rgbAtr, atr_len)) : std::string{};
        const bool first = k.state == SCARD_STATE_UNAWARE;
        const unsigned old_count = (k.state >> 16) & 0xFFFF, new_count = (ev >> 16) & 0xFFFF;
        const bool was_present = k.present;
        const std::string old_atr = k.atr;
        k.state = ev & ~static_cast<DWORD>(SCARD_STATE_CHANGED);
        k.present = present;
        k.atr = atr;
        if (first) {
            if (present) emit(EventKind::card_inserted, rs.szReader, atr);
        } else if (was_present && !present) {
            emit(EventKind::card_removed, rs.szReader, old_atr);
        } else if (!was_present && present) {
            emit(EventKind::card_inserted, rs.szReader, atr);
        } else if (was_present && present &&
                   (atr != old_atr || ((new_count - old_count) & 0xFFFF) >= 2)) {
            // Swapped between two calls: one removal and one insertion at least.
            emit(EventKind::card_removed, rs.szReader, old_atr);
            emit(EventKind::card_inserted, rs.szReader, atr);
        }
    }

    // Watches until stop (returns SCARD_S_SUCCESS) or until the context is lost.
    LONG watch(const ScardContext& context) {
        std::vector<std::string> names;
        std::vector<SCARD_READERSTATE> states;
        // The PnP pseudo reader's last dwEventState, fed back like any reader's: pcsc-lite 1.9
        // reports a reader count change during the wait and keeps nothing here, later versions
        // keep the reader count in the upper 16 bits and return at once when it differs from
        // theirs. Echoing what the library said is right for both; a value of our own making
        // could make a newer library return immediately, forever.
        DWORD pnp_state = SCARD_STATE_UNAWARE;
        while (!stopping()) {
            LONG rv = list_readers(context, names);
            if (rv != SCARD_S_SUCCESS) return rv;
            reconcile(names);

            // pcsc-lite refuses more than PCSCLITE_MAX_READERS_CONTEXTS entries, the PnP one
            // included; the 16th reader of a full pcscd goes unwatched for card events.
            states.clear();
            SCARD_READERSTATE pnp{};
            pnp.szReader = pnp_reader;
            pnp.dwCurrentState = pnp_state;
            states.push_back(pnp);
            for (const auto& [name, k] : known) {
                if (states.size() >= PCSCLITE_MAX_READERS_CONTEXTS) break;
                SCARD_READERSTATE rs{};
                rs.szReader = name.c_str();
                rs.dwCurrentState = k.state;
                states.push_back(rs);
            }

            rv = SCardGetStatusChange(context.get(),
                                      static_cast<DWORD>(options.rescan_interval.count()),
                                      states.data(), static_cast<DWORD>(states.size()));
            switch (rv) {
                case SCARD_S_SUCCESS:
                    pnp_state = states[0].dwEventState & ~static_cast<DWORD>(SCARD_STATE_CHANGED);
                    for (std::size_t i = 1; i < states.size(); ++i) observe(states[i]);
                    break;
                case SCARD_E_TIMEOUT:         // rescan
                case SCARD_E_CANCELLED:       // stop, checked above
                case SCARD_E_UNKNOWN_READER:  // a reader left between listing and waiting
                case SCARD_E_READER_UNAVAILABLE:
                case SCARD_E_NO_READERS_AVAILABLE:
                    break;
                default:
                    if (service_lost(rv)) return rv;
                    // Anything else is unexpected but says nothing about the context: back off
                    // a little rather than spin on it.
                    if (sleep_for(options.backoff_initial)) return SCARD_S_SUCCESS;
            }
        }
        return SCARD_S_SUCCESS;
    }

    void run() {
        auto backoff = options.backoff_initial;
        while (!stopping()) {
            ScardContext context;
            const LONG rv = context.establish();
            if (rv != SCARD_S_SUCCESS) {
                set_available(false, rv);
                forget_all();
                if (sleep_for(backoff)) break;
                backoff = std::min(backoff * 2, options.backoff_max);
                continue;
            }
            {
                std::lock_guard lock(mutex);
                if (stop) break;
                published = context.get();
                available = true;
            }
            backoff = options.backoff_initial;
            const LONG lost = watch(context);
            {
                std::lock_guard lock(mutex);
                published = 0;
            }
            context.reset();
            if (stopping()) break;
            // The context died under us (pcscd stopped or restarted).
            set_available(false, lost);
            forget_all();
            if (sleep_for(backoff)) break;
        }
        std::lock_guard lock(mutex);
        done = true;
        done_cv.notify_all();
    }
};

Watcher::Watcher(Callback on_event, WatcherOptions options) : state_(std::make_unique<State>()) {
    state_->on_event = std::move(on_event);
    state_->options = options;
    if (state_->options.rescan_interval.count() <= 0)
        state_->options.rescan_interval = std::chrono::milliseconds(1);
    if (state_->options.backoff_initial.count() <= 0)
        state_->options.backoff_initial = std::chrono::milliseconds(1);
    state_->options.backoff_max =
        std::max(state_->options.backoff_max, state_->options.backoff_initial);
    try {
        state_->thread = std::thread([s = state_.get()] { s->run(); });
    } catch (const std::system_error& e) {
        throw Error::internal(std::string("pcsc watcher thread: ") + e.what());
    }
}

Watcher::~Watcher() {
    State& s = *state_;
    std::unique_lock lock(s.mutex);
    s.stop = true;
    s.wake.notify_all();
    // A cancel only reaches a thread already blocked in SCardGetStatusChange; one sent a moment
    // before it blocks is lost. So cancel again until the thread says it is done.
    while (!s.done) {
        if (s.published != 0) (void)SCardCancel(s.published);
        s.done_cv.wait_for(lock, std::chrono::milliseconds(20), [&] { return s.done; });
    }
    lock.unlock();
    if (s.thread.joinable()) s.thread.join();
}

std::vector<ReaderState> Watcher::readers() const {
    std::lock_guard lock(state_->mutex);
    std::vector<ReaderState> out;
    out.reserve(state_->snapshot.size());
    for (const auto& [name, r] : state_->snapshot) out.push_back(r);
    return out;
}

bool Watcher::service_available() const {
    std::lock_guard lock(state_->mutex);
    return state_->available;
}

std::string Watcher::last_error() const {
    std::lock_guard lock(state_->mutex);
    return state_->last_error;
}

}  // namespace hbsd::hsm::pcsc
