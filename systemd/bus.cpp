#include "systemd/bus.hpp"

#include "protocol/error.hpp"
#include "protocol/unique_fd.hpp"

#include <poll.h>
#include <sys/eventfd.h>
#include <systemd/sd-bus.h>
#include <time.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

namespace hbsd::systemd {
namespace {

// One move-only owner per sd-bus handle.
class SdBus {
  public:
    SdBus() noexcept = default;
    explicit SdBus(sd_bus* b) noexcept : b_(b) {}
    SdBus(SdBus&& o) noexcept : b_(std::exchange(o.b_, nullptr)) {}
    SdBus& operator=(SdBus&& o) noexcept {
        if (this != &o) {
            reset();
            b_ = std::exchange(o.b_, nullptr);
        }
        return *this;
    }
    ~SdBus() { reset(); }
    sd_bus* get() const noexcept { return b_; }
    void reset() noexcept {
        // Flush: the last signals queued before shutdown still reach the bus.
        if (b_) sd_bus_flush_close_unref(std::exchange(b_, nullptr));
    }

  private:
    sd_bus* b_ = nullptr;
};

class SdBusSlot {
  public:
    SdBusSlot() noexcept = default;
    SdBusSlot(SdBusSlot&& o) noexcept : s_(std::exchange(o.s_, nullptr)) {}
    SdBusSlot& operator=(SdBusSlot&& o) noexcept {
        if (this != &o) {
            reset();
            s_ = std::exchange(o.s_, nullptr);
        }
        return *this;
    }
    ~SdBusSlot() { reset(); }
    sd_bus_slot** out() noexcept {
        reset();
        return &s_;
    }
    void reset() noexcept {
        if (s_) sd_bus_slot_unref(std::exchange(s_, nullptr));
    }

  private:
    sd_bus_slot* s_ = nullptr;
};

[[noreturn]] void fail(const char* what, int r) {
    throw Error::internal(std::string("D-Bus: ") + what + ": " + std::strerror(-r));
}

// Signals waiting for the bus thread. Beyond this the bus is not keeping up (or a desktop
// flood): older insert/remove events are dropped rather than letting memory grow; the
// properties still tell the truth.
constexpr std::size_t kMaxQueued = 1024;

}  // namespace

struct StatusBus::Impl {
    struct Signal {
        bool inserted;
        std::string uri, reader;
    };

    Snapshot snapshot;
    SdBus bus;
    SdBusSlot object;
    UniqueFd wake;
    std::mutex mu;
    std::vector<Signal> queue;  // guarded by mu
    bool changed = false;       // guarded by mu
    bool stop = false;          // guarded by mu
    std::atomic<bool> alive{true};
    std::thread thread;

    void wakeup() noexcept {
        const std::uint64_t one = 1;
        // EAGAIN means the counter is already non-zero: the thread wakes anyway.
        [[maybe_unused]] auto n = ::write(wake.get(), &one, sizeof one);
    }

    void enqueue(bool inserted, const std::string& uri, const std::string& reader) noexcept {
        if (!alive) return;
        try {
            std::lock_guard lock(mu);
            if (queue.size() >= kMaxQueued) queue.erase(queue.begin());
            queue.push_back({inserted, uri, reader});
        } catch (...) {  // bad_alloc: a desktop notification is not worth more
            return;
        }
        wakeup();
    }

    void run() noexcept;
};

namespace {

int get_property(sd_bus*, const char*, const char*, const char* property, sd_bus_message* reply,
                 void* userdata, sd_bus_error* error) {
    auto* self = static_cast<StatusBus::Impl*>(userdata);
    BusSnapshot s;
    try {
        s = self->snapshot();
    } catch (...) {
        return sd_bus_error_set(error, SD_BUS_ERROR_FAILED, "hbsd status is not available");
    }
    if (std::strcmp(property, "Version") == 0)
        return sd_bus_message_append(reply, "s", s.version.c_str());
    if (std::strcmp(property, "TokensPresent") == 0)
        return sd_bus_message_append(reply, "u", s.tokens_present);
    if (std::strcmp(property, "Sessions") == 0)
        return sd_bus_message_append(reply, "u", s.sessions);
    if (std::strcmp(property, "Signatures") == 0)
        return sd_bus_message_append(reply, "t", s.signatures);
    return sd_bus_error_set(error, SD_BUS_ERROR_UNKNOWN_PROPERTY, property);
}

const sd_bus_vtable kVtable[] = {
    SD_BUS_VTABLE_START(0),
    // The version never changes while the daemon runs: clients may cache it.
    SD_BUS_PROPERTY("Version", "s", get_property, 0, SD_BUS_VTABLE_PROPERTY_CONST),
    SD_BUS_PROPERTY("TokensPresent", "u", get_property, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
    SD_BUS_PROPERTY("Sessions", "u", get_property, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
    SD_BUS_PROPERTY("Signatures", "t", get_property, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
    SD_BUS_SIGNAL_WITH_NAMES("TokenInserted", "ss", SD_BUS_PARAM(uri) SD_BUS_PARAM(reader), 0),
    SD_BUS_SIGNAL_WITH_NAMES("TokenRemoved", "ss", SD_BUS_PARAM(uri) SD_BUS_PARAM(reader), 0),
    SD_BUS_VTABLE_END,
};

// sd_bus_get_timeout gives an absolute CLOCK_MONOTONIC time in microseconds; poll wants
// relative milliseconds, rounded up so that the deadline has passed when poll returns.
int poll_timeout_ms(sd_bus* bus) noexcept {
    std::uint64_t until = 0;
    if (sd_bus_get_timeout(bus, &until) < 0 || until == UINT64_MAX) return -1;
    timespec ts{};
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    const std::uint64_t now = static_cast<std::uint64_t>(ts.tv_sec) * 1000000u +
                              static_cast<std::uint64_t>(ts.tv_nsec) / 1000u;
    if (until <= now) return 0;
    const std::uint64_t ms = (until - now + 999) / 1000;
    return ms > 60000 ? 60000 : static_cast<int>(ms);
}

}  // namespace

void StatusBus::Impl::run() noexcept {
    sd_bus* b = bus.get();
    for (;;) {
        std::vector<Signal> work;
        bool emit_changed = false, stopping = false;
        {
            std::lock_guard lock(mu);
            work.swap(queue);
            emit_changed = std::exchange(changed, false);
            stopping = stop;
        }
        // Failures to queue a signal (out of memory, connection gone) are noticed by
        // sd_bus_process below; a lost desktop notification is not an error of the daemon.
        for (const auto& s : work)
            sd_bus_emit_signal(b, kPath, kInterface, s.inserted ? "TokenInserted" : "TokenRemoved",
                               "ss", s.uri.c_str(), s.reader.c_str());
        if (emit_changed)
            sd_bus_emit_properties_changed(b, kPath, kInterface, "TokensPresent", "Sessions",
                                           "Signatures", nullptr);
        if (stopping) break;

        int r;
        while ((r = sd_bus_process(b, nullptr)) > 0) {
        }
        if (r < 0 || sd_bus_is_open(b) <= 0) break;

        pollfd fds[2] = {
            {sd_bus_get_fd(b), static_cast<short>(sd_bus_get_events(b)), 0},
            {wake.get(), POLLIN, 0},
        };
        if (::poll(fds, 2, poll_timeout_ms(b)) < 0 && errno != EINTR) break;
        if (fds[1].revents & POLLIN) {
            std::uint64_t v;
            [[maybe_unused]] auto n = ::read(wake.get(), &v, sizeof v);
        }
    }
    alive = false;
}

StatusBus::StatusBus(Snapshot snapshot, const std::string& address) : impl_(new Impl) {
    auto& m = *impl_;
    m.snapshot = std::move(snapshot);
    sd_bus* raw = nullptr;
    int r;
    if (address.empty()) {
        r = sd_bus_open_system(&raw);
        m.bus = SdBus(raw);
        if (r < 0) fail("connect to the system bus", r);
    } else {
        r = sd_bus_new(&raw);
        if (r < 0) fail("sd_bus_new", r);
        m.bus = SdBus(raw);
        if ((r = sd_bus_set_address(raw, address.c_str())) < 0) fail("bus address", r);
        if ((r = sd_bus_set_bus_client(raw, 1)) < 0) fail("sd_bus_set_bus_client", r);
        if ((r = sd_bus_start(raw)) < 0) fail(("connect to " + address).c_str(), r);
    }
    r = sd_bus_add_object_vtable(m.bus.get(), m.object.out(), kPath, kInterface, kVtable, &m);
    if (r < 0) fail("export /vn/hocbaso/Signer1", r);
    // No queueing, no replacing: a second hbsd (or anything else) holding the name is a
    // misconfiguration to report, not something to wait for.
    r = sd_bus_request_name(m.bus.get(), kName, 0);
    if (r < 0) fail("request the name vn.hocbaso.Signer1", r);
    m.wake = UniqueFd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (!m.wake) fail("eventfd", -errno);
    m.thread = std::thread([&m] { m.run(); });
}

StatusBus::~StatusBus() {
    {
        std::lock_guard lock(impl_->mu);
        impl_->stop = true;
    }
    impl_->wakeup();
    if (impl_->thread.joinable()) impl_->thread.join();
    // Members go in reverse order: the object's slot before the bus (which flushes).
}

void StatusBus::properties_changed() noexcept {
    if (!impl_->alive) return;
    {
        std::lock_guard lock(impl_->mu);
        impl_->changed = true;
    }
    impl_->wakeup();
}

void StatusBus::token_inserted(const std::string& uri, const std::string& reader) noexcept {
    impl_->enqueue(true, uri, reader);
}

void StatusBus::token_removed(const std::string& uri, const std::string& reader) noexcept {
    impl_->enqueue(false, uri, reader);
}

bool StatusBus::connected() const noexcept {
    return impl_->alive;
}

}  // namespace hbsd::systemd
