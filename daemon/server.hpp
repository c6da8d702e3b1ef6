// The Varlink server: one I/O thread runs every socket (accept, read, write, timers), so
// connection state needs no locks; handlers that may block (PKCS#11, XML) run on a separate
// worker pool and hand their replies back to the I/O thread.
//
// Shutdown (SIGTERM/SIGINT): the listening socket closes at once, new calls are refused with
// Busy, calls already running (a whole SignBatch included) finish and their replies are
// written, then every connection closes and run() returns.
//
// Under systemd (Type=notify): READY=1 once serving, STOPPING=1 at shutdown, WATCHDOG=1 from
// the I/O thread itself (a stuck loop stops feeding it), and SIGHUP reloads the configuration
// file with its trust anchors and CRLs (RELOADING=1, then READY=1 whether or not the new file
// was good; reload.hpp says what changes at once and what needs a restart).
#pragma once

#include "daemon/dispatch.hpp"
#include "daemon/services.hpp"
#include "systemd/bus.hpp"

#include <array>
#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <unordered_map>

namespace hbsd::daemon {

class Connection;

class Server {
  public:
    struct Options {
        // Publish the read-only D-Bus status object (systemd/bus.hpp) when the system bus is
        // reachable; off in development mode.
        bool status_bus = true;
        // Reads and checks the configuration file again (main: load_config of --config with
        // the command line's overrides); throws ConfigError. Empty: a reload re-reads only the
        // trust anchors and CRLs of the running configuration (development mode).
        std::function<Config()> reload_config;
    };

    Server(Services& services, const Dispatcher& dispatcher, Options options);
    Server(const Server&) = delete;
    Server& operator=(const Server&) = delete;
    ~Server();

    // Binds config.socket.path (or takes the socket systemd passed, LISTEN_FDS). Throws
    // std::runtime_error when the socket cannot be made or another daemon listens on it.
    void listen();
    // Serves until a stop signal (or stop()), then drains; returns when everything is closed.
    void run();
    // Thread-safe: begins the same shutdown a SIGTERM does.
    void stop();

    // Retry hint in Busy replies.
    static constexpr long kBusyRetryMs = 200;

  private:
    friend class Connection;

    void accept();
    void begin_drain();
    void finish_if_drained();
    void sweep();
    void watchdog(std::chrono::microseconds interval);
    void wait_for_hangup();
    // On the I/O thread: RELOADING=1, then reload() on the pool, then READY=1.
    void begin_reload();
    // On the pool; never throws. The STATUS= line that tells how it went.
    std::string reload() noexcept;
    void start_status_bus();
    // Token events from the event bus become the D-Bus object's TokenInserted/TokenRemoved.
    void forward_token_signals();
    void on_closed(Connection* c) noexcept;
    void stop_timers() noexcept;
    void on_call_finished();

    Services& services_;
    const Dispatcher& dispatcher_;
    boost::asio::io_context io_{1};
    boost::asio::local::stream_protocol::acceptor acceptor_;
    boost::asio::thread_pool pool_;
    boost::asio::signal_set signals_;
    boost::asio::signal_set hangup_;
    boost::asio::steady_timer watchdog_timer_;
    boost::asio::steady_timer sweep_timer_;
    boost::asio::steady_timer accept_retry_;
    boost::asio::steady_timer drain_deadline_;
    std::unordered_map<Connection*, std::weak_ptr<Connection>> connections_;
    unsigned inflight_ = 0;     // calls on the worker pool; touched on the I/O thread only
    unsigned identifying_ = 0;  // accepted, peer groups being looked up
    Options options_;
    std::unique_ptr<systemd::StatusBus> bus_;
    std::shared_ptr<Subscription> bus_events_;  // drained on the I/O thread
    std::array<std::uint64_t, 3> announced_{};  // tokens present, sessions, signatures
    unsigned ticks_ = 0;
    std::atomic<bool> housekeeping_queued_{false};
    bool draining_ = false;
    bool reloading_ = false;     // a reload runs on the pool (I/O thread only)
    bool reload_again_ = false;  // SIGHUP came meanwhile: once more when it is done
    bool finished_ = false;
    std::string unlink_on_exit_;
};

}  // namespace hbsd::daemon
