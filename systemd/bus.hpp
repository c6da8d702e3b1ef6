// The optional read-only D-Bus object of hbsd, for desktop front-ends (a tray icon that shows
// "card inserted", a count of signatures): bus name vn.hocbaso.Signer1, object
// /vn/hocbaso/Signer1, interface vn.hocbaso.Signer1 with
//   properties  Version s (const), TokensPresent u, Sessions u, Signatures t
//               (PropertiesChanged on properties_changed())
//   signals     TokenInserted(s uri, s reader), TokenRemoved(s uri, s reader)
// and no methods: signing is the Varlink socket's, with its per-caller rules. The bus policy
// (systemd/vn.hocbaso.Signer1.conf) lets only user hbsd own the name and everyone read.
//
// Threading: the object runs its own thread (sd_bus_process + poll on the bus descriptor and
// an eventfd). sd-bus connections are not thread-safe, and the daemon's Asio loop should not
// carry a second protocol's blocking flushes; so every public member below only queues work
// and wakes that thread, and is safe to call from any thread. The snapshot callback runs on
// the bus thread whenever a client reads a property or a change is announced.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace hbsd::systemd {

struct BusSnapshot {
    std::string version;
    std::uint32_t tokens_present = 0;
    std::uint32_t sessions = 0;
    std::uint64_t signatures = 0;
};

class StatusBus {
  public:
    static constexpr const char* kName = "vn.hocbaso.Signer1";
    static constexpr const char* kPath = "/vn/hocbaso/Signer1";
    static constexpr const char* kInterface = "vn.hocbaso.Signer1";

    // Must be thread-safe, quick and non-throwing in practice (read counters, never ask a
    // token): it runs on the bus thread while a client waits. If it throws, the client gets
    // an error reply for that read.
    using Snapshot = std::function<BusSnapshot()>;

    // Connects to the system bus (empty `address`) or to the given D-Bus address
    // ("unix:path=/run/..." - tests use a private dbus-daemon), exports the object, requests
    // the name and starts the thread. Throws hbsd::Error (Internal) when the bus cannot be
    // reached, the name is taken or refused by the bus policy; the daemon should log that and
    // serve without the object.
    explicit StatusBus(Snapshot snapshot, const std::string& address = {});
    // Stops the thread, sends what is still queued, releases the name. Never throws.
    ~StatusBus();
    StatusBus(const StatusBus&) = delete;
    StatusBus& operator=(const StatusBus&) = delete;

    // Announces new values of TokensPresent, Sessions and Signatures (read again through the
    // snapshot). Calls that come faster than the bus thread runs are merged into one signal.
    void properties_changed() noexcept;
    void token_inserted(const std::string& uri, const std::string& reader) noexcept;
    void token_removed(const std::string& uri, const std::string& reader) noexcept;

    // False once the connection broke (the bus daemon restarted): the thread has ended and
    // the daemon may make a new StatusBus.
    bool connected() const noexcept;

    struct Impl;

  private:
    std::unique_ptr<Impl> impl_;
};

}  // namespace hbsd::systemd
