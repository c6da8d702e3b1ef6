#include "daemon/server.hpp"

#include "daemon/connection.hpp"
#include "daemon/log.hpp"
#include "daemon/reload.hpp"
#include "protocol/client.hpp"
#include "protocol/codec.hpp"

#include <grp.h>
#include <sys/stat.h>
#include "systemd/listen.hpp"
#include "systemd/notify.hpp"

#include <boost/asio/post.hpp>
#include <csignal>
#include <filesystem>
#include <stdexcept>

namespace hbsd::daemon {
namespace asio = boost::asio;
using stream = asio::local::stream_protocol;

Server::Server(Services& services, const Dispatcher& dispatcher, Options options)
    : services_(services),
      dispatcher_(dispatcher),
      acceptor_(io_),
      pool_(services.config()->limits.worker_threads),
      signals_(io_, SIGTERM, SIGINT),
      hangup_(io_, SIGHUP),
      watchdog_timer_(io_),
      sweep_timer_(io_),
      accept_retry_(io_),
      drain_deadline_(io_),
      options_(options) {}

Server::~Server() {
    pool_.join();
    if (!unlink_on_exit_.empty()) ::unlink(unlink_on_exit_.c_str());
}

void Server::listen() {
    if (const auto fd = systemd::activated_socket()) {
        // Socket activation: systemd made the socket (path, mode, group are the unit's).
        acceptor_.assign(stream(), *fd);
        log::info("listening on the socket passed by systemd");
        return;
    }
    // Restart-only: every snapshot keeps the socket settings of start-up (reload.hpp).
    const auto config = services_.config();
    const auto& sc = config->socket;
    std::error_code fec;
    if (std::filesystem::is_socket(sc.path, fec)) {
        // A socket file is left by a daemon that died; one that still answers is alive.
        bool alive = false;
        try {
            protocol::connect_unix(sc.path);
            alive = true;
        } catch (const protocol::ConnectionError&) {
        }
        if (alive) throw std::runtime_error(sc.path + ": another daemon is listening there");
        ::unlink(sc.path.c_str());
    }
    acceptor_.open(stream());
    // The socket file must never exist with looser permissions than configured, even briefly.
    const mode_t old = ::umask(0177);
    boost::system::error_code ec;
    acceptor_.bind(stream::endpoint(sc.path), ec);
    ::umask(old);
    if (ec) throw std::runtime_error(sc.path + ": bind: " + ec.message());
    unlink_on_exit_ = sc.path;
    if (sc.group) {
        group gr{}, *res = nullptr;
        std::vector<char> buf(65536);
        if (getgrnam_r(sc.group->c_str(), &gr, buf.data(), buf.size(), &res) != 0 || !res)
            throw std::runtime_error("socket group '" + *sc.group + "' does not exist");
        if (::chown(sc.path.c_str(), static_cast<uid_t>(-1), gr.gr_gid) != 0)
            throw std::runtime_error(sc.path + ": chown: " + std::strerror(errno));
    }
    if (::chmod(sc.path.c_str(), sc.mode) != 0)
        throw std::runtime_error(sc.path + ": chmod: " + std::strerror(errno));
    acceptor_.listen(asio::socket_base::max_listen_connections);
    log::info("listening on %s", sc.path.c_str());
}

void Server::run() {
    signals_.async_wait([this](const boost::system::error_code& ec, int sig) {
        if (ec) return;
        log::info("signal %d: finishing running calls, refusing new ones", sig);
        begin_drain();
    });
    wait_for_hangup();
    asio::post(io_, [this] {
        if (options_.status_bus) start_status_bus();
        if (const auto interval = systemd::watchdog_interval()) watchdog(*interval / 2);
        systemd::notify_ready();
        systemd::notify_status("serving");
        accept();
        sweep();
    });
    io_.run();
    pool_.join();
}

void Server::stop() {
    asio::post(io_, [this] { begin_drain(); });
}

void Server::accept() {
    if (draining_) return;
    acceptor_.async_accept([this](const boost::system::error_code& ec, stream::socket socket) {
        if (draining_) return;
        if (ec) {
            if (ec == asio::error::operation_aborted) return;
            // Out of descriptors and the like: back off instead of spinning.
            log::warning("accept: %s", ec.message().c_str());
            accept_retry_.expires_after(std::chrono::milliseconds(100));
            accept_retry_.async_wait([this](const boost::system::error_code& e) {
                if (!e) accept();
            });
            return;
        }
        if (connections_.size() + identifying_ >= services_.config()->limits.max_connections) {
            // Tell the peer why before hanging up; never block the I/O thread on it.
            const auto f =
                protocol::encode_frame(protocol::encode_error(Error::busy(kBusyRetryMs)));
            boost::system::error_code ignored;
            socket.non_blocking(true, ignored);
            socket.write_some(asio::buffer(f), ignored);
            log::info("connection limit reached");
            accept();
            return;
        }
        // The caller's groups come from NSS (files, LDAP, ...), which may block: look them up
        // on the worker pool, then come back here to serve the connection.
        ++identifying_;
        auto peer = std::make_shared<stream::socket>(std::move(socket));
        asio::post(pool_, [this, peer] {
            std::optional<Caller> caller;
            try {
                caller = identify(peer->native_handle(), services_.config()->access);
            } catch (const std::exception& e) {
                log::warning("peer credentials: %s", e.what());
            }
            asio::post(io_, [this, peer, caller] {
                --identifying_;
                if (!caller || draining_) return;  // the socket closes with `peer`
                auto c = std::make_shared<Connection>(*this, std::move(*peer), *caller);
                connections_.emplace(c.get(), c);
                c->start();
            });
        });
        accept();
    });
}

void Server::sweep() {
    if (draining_) return;
    // Ending a session logs its token out, and looking for gone tokens asks PKCS#11: not on
    // this thread. A failure here must not take the daemon down; the next round retries.
    const bool look_at_tokens = ticks_++ % 5 == 0;
    if (bus_) {
        // PropertiesChanged only when a counter moved, not once a second.
        const std::array<std::uint64_t, 3> now{services_.tokens_present.load(),
                                               services_.sessions.count_hint(),
                                               static_cast<std::uint64_t>(services_.signatures)};
        if (now != announced_) bus_->properties_changed();
        announced_ = now;
    }
    // While long calls keep every worker busy, one queued round is enough.
    if (!housekeeping_queued_.exchange(true)) {
        asio::post(pool_, [this, look_at_tokens] {
            housekeeping_queued_ = false;
            try {
                housekeeping(services_, look_at_tokens);
            } catch (const std::exception& e) {
                log::warning("housekeeping: %s", e.what());
            }
        });
    }
    sweep_timer_.expires_after(std::chrono::seconds(1));
    sweep_timer_.async_wait([this](const boost::system::error_code& ec) {
        if (!ec) sweep();
    });
}

void Server::watchdog(std::chrono::microseconds interval) {
    // Fed from this thread: if the I/O loop hangs, the feeding stops and systemd restarts us.
    systemd::notify_watchdog();
    watchdog_timer_.expires_after(interval);
    watchdog_timer_.async_wait([this, interval](const boost::system::error_code& ec) {
        if (!ec) watchdog(interval);
    });
}

void Server::wait_for_hangup() {
    hangup_.async_wait([this](const boost::system::error_code& ec, int) {
        if (ec || draining_) return;
        // Two reloads at once could finish in either order and leave the older file in force.
        if (reloading_)
            reload_again_ = true;
        else
            begin_reload();
        wait_for_hangup();
    });
}

void Server::begin_reload() {
    reloading_ = true;
    systemd::notify_reloading();
    systemd::notify_status("reloading the configuration");
    // Reading the file, resolving user and group names (NSS) and certificate files: blocking,
    // so on the pool, beside the calls that keep being served meanwhile.
    asio::post(pool_, [this] {
        auto status = reload();
        asio::post(io_, [this, status = std::move(status)] {
            reloading_ = false;
            if (draining_) return;  // STOPPING=1 was sent; READY=1 now would contradict it
            // READY=1 even after a failed reload: the daemon serves on with the old settings,
            // and STATUS= tells the admin (systemctl status) why nothing changed.
            systemd::notify_status(status);
            systemd::notify_ready();
            if (reload_again_) {
                reload_again_ = false;
                begin_reload();
            }
        });
    });
}

std::string Server::reload() noexcept {
    const std::string keeping = ", keeping the running configuration: ";
    try {
        const auto running = services_.config();
        log::info("SIGHUP: reloading the configuration");
        // The whole new file and every certificate file it names are read and checked before
        // anything changes: a bad one leaves the daemon exactly as it was.
        Config fresh = options_.reload_config ? options_.reload_config() : *running;
        auto trust = load_trust(fresh);
        const auto level = log::level_from_name(fresh.log_level);
        auto plan = plan_reload(*running, std::move(fresh));
        const bool mapping_changed = plan.token_mapping_changed;
        services_.replace(
            {std::make_shared<const Config>(std::move(plan.config)), std::move(trust)});
        if (level) log::set_level(*level);
        for (const auto& line : plan.kept) log::warning("reload: %s", line.c_str());
        for (const auto& line : plan.changed) log::info("reload: %s", line.c_str());
        log::info("configuration reloaded (%zu changes, %zu settings kept until a restart)",
                  plan.changed.size(), plan.kept.size());
        // A new mapping decides which tokens count as present: look now, not at the next round.
        if (mapping_changed) {
            try {
                current_tokens(services_);
            } catch (const std::exception& e) {
                log::warning("refreshing tokens after the reload: %s", e.what());
            }
        }
        return plan.kept.empty()
                   ? "serving; configuration reloaded"
                   : "serving; configuration reloaded, some changes need a restart (see the log)";
    } catch (const ConfigError& e) {
        // Already "file:line:column: message".
        log::error("reload failed%s%s", keeping.c_str(), e.what());
        return "serving; reload failed" + keeping + e.what();
    } catch (const Error& e) {
        const std::string why = e.detail().empty() ? e.what() : e.detail();
        log::error("reload failed%s%s", keeping.c_str(), why.c_str());
        return "serving; reload failed" + keeping + why;
    } catch (const std::exception& e) {
        log::error("reload failed%s%s", keeping.c_str(), e.what());
        return "serving; reload failed" + keeping + e.what();
    }
}

void Server::start_status_bus() {
    try {
        Services& s = services_;
        bus_ = std::make_unique<systemd::StatusBus>([&s] {
            // Counters only: this runs on the bus thread while a D-Bus client waits.
            return systemd::BusSnapshot{HBSD_VERSION, s.tokens_present.load(),
                                        static_cast<std::uint32_t>(s.sessions.count_hint()),
                                        static_cast<std::uint64_t>(s.signatures.load())};
        });
        // The bus is told on the I/O thread, never on the publisher's (a worker mid-signature).
        bus_events_ = services_.events.subscribe(
            [this] { asio::post(io_, [this] { forward_token_signals(); }); });
        log::info("D-Bus status object %s published", systemd::StatusBus::kName);
    } catch (const std::exception& e) {
        log::info("no D-Bus status object: %s", e.what());
    }
}

void Server::forward_token_signals() {
    if (!bus_ || !bus_events_) return;
    std::uint64_t dropped = 0;
    for (const auto& e : bus_events_->take(256, dropped)) {
        const std::string uri = e.event.token.value_or("");
        const std::string reader = e.event.reader.value_or("");
        if (e.event.kind == "token_inserted") bus_->token_inserted(uri, reader);
        if (e.event.kind == "token_removed") bus_->token_removed(uri, reader);
    }
}

void Server::begin_drain() {
    if (draining_) return;
    draining_ = true;
    systemd::notify_stopping();
    systemd::notify_status("finishing running calls");
    boost::system::error_code ignored;
    acceptor_.close(ignored);
    // New connections fail at connect() from now on.
    if (!unlink_on_exit_.empty()) {
        ::unlink(unlink_on_exit_.c_str());
        unlink_on_exit_.clear();
    }
    sweep_timer_.cancel();
    accept_retry_.cancel();
    signals_.cancel();
    hangup_.cancel();
    finish_if_drained();
}

void Server::on_call_finished() {
    --inflight_;
    finish_if_drained();
}

void Server::finish_if_drained() {
    if (!draining_ || inflight_ != 0 || finished_) return;
    finished_ = true;
    std::vector<std::shared_ptr<Connection>> live;
    for (auto& [p, w] : connections_)
        if (auto c = w.lock()) live.push_back(std::move(c));
    for (auto& c : live) c->drain();
    // A peer that does not read its last reply must not hold the daemon up for ever.
    drain_deadline_.expires_after(std::chrono::seconds(5));
    drain_deadline_.async_wait([this](const boost::system::error_code& ec) {
        if (ec) return;
        std::vector<std::shared_ptr<Connection>> rest;
        for (auto& [p, w] : connections_)
            if (auto c = w.lock()) rest.push_back(std::move(c));
        for (auto& c : rest) c->close();
    });
    if (connections_.empty()) stop_timers();
}

void Server::stop_timers() noexcept {
    // The last pending waits: once they are gone, io_.run() returns. The watchdog is fed until
    // here, so a long drain is not mistaken for a hang.
    drain_deadline_.cancel();
    watchdog_timer_.cancel();
}

void Server::on_closed(Connection* c) noexcept {
    connections_.erase(c);
    if (finished_ && connections_.empty()) stop_timers();
}

}  // namespace hbsd::daemon
