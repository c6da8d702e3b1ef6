#include "daemon/server.hpp"

#include "daemon/connection.hpp"
#include "daemon/log.hpp"
#include "protocol/client.hpp"
#include "protocol/codec.hpp"

#include <grp.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>

#include <boost/asio/post.hpp>
#include <csignal>
#include <filesystem>
#include <stdexcept>

namespace hbsd::daemon {
namespace asio = boost::asio;
using stream = asio::local::stream_protocol;

Server::Server(Services& services, const Dispatcher& dispatcher)
    : services_(services),
      dispatcher_(dispatcher),
      acceptor_(io_),
      pool_(services.config.limits.worker_threads),
      signals_(io_, SIGTERM, SIGINT),
      sweep_timer_(io_),
      accept_retry_(io_),
      drain_deadline_(io_) {}

Server::~Server() {
    pool_.join();
    if (!unlink_on_exit_.empty()) ::unlink(unlink_on_exit_.c_str());
}

void Server::listen() {
    if (sd_listen_fds(1) >= 1) {
        // Socket activation: systemd made the socket (path, mode, group are the unit's).
        acceptor_.assign(stream(), SD_LISTEN_FDS_START);
        log::info("listening on the socket passed by systemd");
        return;
    }
    const auto& sc = services_.config.socket;
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
    asio::post(io_, [this] {
        sd_notify(0, "READY=1");
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
        if (connections_.size() + identifying_ >= services_.config.limits.max_connections) {
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
                caller = identify(peer->native_handle(), services_.config.access);
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
    asio::post(pool_, [this] {
        try {
            housekeeping(services_);
        } catch (const std::exception& e) {
            log::warning("housekeeping: %s", e.what());
        }
    });
    sweep_timer_.expires_after(std::chrono::seconds(1));
    sweep_timer_.async_wait([this](const boost::system::error_code& ec) {
        if (!ec) sweep();
    });
}

void Server::begin_drain() {
    if (draining_) return;
    draining_ = true;
    sd_notify(0, "STOPPING=1");
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
    if (connections_.empty()) drain_deadline_.cancel();
}

void Server::on_closed(Connection* c) noexcept {
    connections_.erase(c);
    if (finished_ && connections_.empty()) drain_deadline_.cancel();
}

}  // namespace hbsd::daemon
