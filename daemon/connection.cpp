#include "daemon/connection.hpp"

#include "daemon/log.hpp"
#include "daemon/server.hpp"
#include "protocol/codec.hpp"

#include <openssl/crypto.h>

#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>

namespace hbsd::daemon {
namespace asio = boost::asio;
namespace json = boost::json;

Connection::Connection(Server& server, asio::local::stream_protocol::socket socket, Caller caller)
    : server_(server),
      socket_(std::move(socket)),
      caller_(caller),
      // max_frame_bytes as it is when the peer connects; a reload applies to later connections.
      decoder_(server.services_.config()->limits.max_frame_bytes),
      idle_(server.io_) {}

void Connection::start() {
    arm_idle();
    read();
}

void Connection::read() {
    // Backpressure: nothing more is read while decoded frames wait.
    if (reading_ || closed_ || peer_done_ || close_after_flush_ || decoder_.has_frame()) return;
    reading_ = true;
    socket_.async_read_some(asio::buffer(buf_),
                            [self = shared_from_this()](const boost::system::error_code& ec,
                                                        std::size_t n) { self->on_read(ec, n); });
}

void Connection::on_read(const boost::system::error_code& ec, std::size_t n) {
    reading_ = false;
    if (closed_) return;
    if (ec) {
        peer_done_ = true;
        process();
        return;
    }
    if (decoder_.feed({buf_.data(), n}) == protocol::FrameDecoder::Status::too_large) {
        // The stream is out of sync from here: say why, then hang up.
        log::info("uid=%u pid=%d: frame over %zu bytes, closing", caller_.uid, caller_.pid,
                  decoder_.limit());
        send(protocol::encode_frame(protocol::encode_error(
            Error::document_too_large(static_cast<long long>(decoder_.refused_size()),
                                      static_cast<long long>(decoder_.limit())))));
        close_when_flushed();
        return;
    }
    // Only a complete frame counts as activity: a peer trickling one byte at a time must not
    // hold a connection (and up to max_frame_bytes of memory) open for ever.
    if (decoder_.has_frame()) arm_idle();
    process();
}

void Connection::follow_events() {
    // Streamed on this thread, not a worker: any number of watchers costs no worker and no
    // max_inflight slot, so watching never holds up signing. The bus only queues (bounded, the
    // oldest dropped for a slow watcher, see events.hpp) and posts a wake-up here.
    in_call_ = true;
    auto& io = server_.io_;
    events_ = server_.services_.events.subscribe([weak = weak_from_this(), &io] {
        asio::post(io, [weak] {
            if (auto self = weak.lock()) self->pump_events();
        });
    });
    // A watcher sends nothing more: its hangup (or any bytes) ends the stream.
    reading_ = true;
    socket_.async_read_some(asio::buffer(buf_), [self = shared_from_this()](
                                                    const boost::system::error_code&, std::size_t) {
        self->reading_ = false;
        self->close();
    });
}

void Connection::pump_events() {
    // One batch at a time, and the next only once it is written: what a slow reader has not
    // taken stays in its bounded queue, not in out_.
    if (closed_ || !events_ || writing_) return;
    std::uint64_t dropped = 0;
    const auto batch = events_->take(64, dropped);
    if (dropped)
        log::info("uid=%u pid=%d: watcher too slow, %llu events dropped", caller_.uid, caller_.pid,
                  static_cast<unsigned long long>(dropped));
    for (const auto& e : batch)
        send(protocol::encode_frame(
            protocol::encode_reply(boost::json::object{{"event", to_json(e)}}, true)));
}

void Connection::process() {
    if (events_) {
        pump_events();
        return;
    }
    // One call at a time, and the next only once the previous reply has left: a peer that
    // sends calls without reading the replies cannot make the daemon queue replies for it.
    while (!closed_ && !in_call_ && !writing_ && !close_after_flush_ && decoder_.has_frame())
        dispatch(*decoder_.next());
    if (closed_ || in_call_ || writing_) return;
    if (peer_done_ && !decoder_.has_frame()) {
        close_when_flushed();
        return;
    }
    read();
}

void Connection::dispatch(std::string frame) {
    protocol::Call call;
    try {
        call = protocol::decode_call(frame);
        // The frame of a login carries a PIN: one copy fewer left behind in freed memory.
        if (call.method == "vn.hocbaso.Signer.OpenSession")
            OPENSSL_cleanse(frame.data(), frame.size());
    } catch (const Error& e) {
        // Not a Varlink call at all: answer once, then hang up (as the reference
        // implementation does), so a confused peer cannot keep a slot busy.
        send(protocol::encode_frame(protocol::encode_error(e)));
        close_when_flushed();
        return;
    }
    const bool reply = !call.oneway;
    auto refuse = [&](const Error& e) {
        if (reply) send(protocol::encode_frame(protocol::encode_error(e)));
    };
    // One snapshot per call: the access rules that admit it, its limits and the trust anchors
    // it is judged by all come from the same configuration, whatever a reload does meanwhile.
    Snapshot now = server_.services_.snapshot();
    caller_.capabilities = capabilities_for(now.config->access, caller_.uid, caller_.groups);
    const MethodEntry* entry = nullptr;
    try {
        if (call.upgrade) throw Error::invalid_parameter("upgrade");
        entry = &server_.dispatcher_.route(caller_, call);
    } catch (const Error& e) {
        refuse(e);
        return;
    }
    if (server_.draining_) {
        refuse(Error::busy(Server::kBusyRetryMs));
        return;
    }

    if (entry->runs == Runs::io_thread) {
        Request req{caller_, call, protocol::Params(call.parameters), {}, now.config, now.trust};
        try {
            auto out = server_.dispatcher_.invoke(*entry, server_.services_, req);
            // A method that requires "more" is an event stream (WatchEvents): its handler only
            // checks the parameters, the connection does the streaming.
            if (entry->requires_more) {
                if (reply) follow_events();
                return;
            }
            if (reply) send(protocol::encode_frame(protocol::encode_reply(out)));
        } catch (const Error& e) {
            refuse(e);
        }
        return;
    }

    if (server_.inflight_ >= now.config->limits.max_inflight) {
        refuse(Error::busy(Server::kBusyRetryMs));
        return;
    }
    ++server_.inflight_;
    in_call_ = true;
    auto shared_call = std::make_shared<protocol::Call>(std::move(call));
    asio::post(server_.pool_, [self = shared_from_this(), entry, shared_call, reply,
                               now = std::move(now)] {
        auto& io = self->server_.io_;
        Request req{.caller = self->caller_,
                    .call = *shared_call,
                    .params = protocol::Params(shared_call->parameters),
                    .stream = {},
                    .config = now.config,
                    .trust = now.trust};
        if (shared_call->more && reply)
            req.stream = [self, &io](json::object part) {
                asio::post(io, [self, f = protocol::encode_frame(protocol::encode_reply(
                                          part, true))]() mutable { self->send(std::move(f)); });
            };
        std::string frame;
        try {
            frame = protocol::encode_frame(protocol::encode_reply(
                self->server_.dispatcher_.invoke(*entry, self->server_.services_, req)));
        } catch (const Error& e) {
            frame = protocol::encode_frame(protocol::encode_error(e));
        } catch (const std::exception& e) {
            // Encoding failed (e.g. out of memory): still answer.
            frame = protocol::encode_frame(protocol::encode_error(Error::internal(e.what())));
        }
        asio::post(io, [self, frame = std::move(frame), reply]() mutable {
            self->finish_call(std::move(frame), reply);
        });
    });
}

void Connection::finish_call(std::string reply_frame, bool send_reply) {
    in_call_ = false;
    if (send_reply) send(std::move(reply_frame));
    server_.on_call_finished();  // during shutdown this may ask us to close once flushed
    if (close_after_flush_) {
        if (!writing_) close();
        return;
    }
    arm_idle();
    process();
}

void Connection::send(std::string frame) {
    if (closed_) return;
    out_.push_back(std::move(frame));
    if (!writing_) write_next();
}

void Connection::write_next() {
    if (closed_) return;
    if (out_.empty()) {
        writing_ = false;
        if (close_after_flush_ && !in_call_)
            close();
        else
            process();  // the next call, now that this reply has left
        return;
    }
    writing_ = true;
    asio::async_write(
        socket_, asio::buffer(out_.front()),
        [self = shared_from_this()](const boost::system::error_code& ec, std::size_t) {
            if (self->closed_) return;
            if (ec) {
                self->close();
                return;
            }
            self->out_.pop_front();
            self->write_next();
        });
}

void Connection::arm_idle() {
    if (closed_) return;
    idle_.expires_after(std::chrono::seconds(server_.services_.config()->limits.idle_timeout_s));
    idle_.async_wait([weak = weak_from_this()](const boost::system::error_code& ec) {
        auto self = weak.lock();
        if (ec || !self || self->closed_) return;
        // A long call is not idleness; a reply the peer does not read for this long is.
        if (self->in_call_) {
            self->arm_idle();
            return;
        }
        log::debug("uid=%u pid=%d: idle, closing", self->caller_.uid, self->caller_.pid);
        self->close();
    });
}

void Connection::close_when_flushed() {
    close_after_flush_ = true;
    if (!writing_ && !in_call_) close();
}

void Connection::drain() {
    if (events_) {
        // A watch has no last reply to wait for.
        events_->close();
        events_.reset();
        in_call_ = false;
    }
    close_when_flushed();
}

void Connection::close() noexcept {
    if (closed_) return;
    closed_ = true;
    if (events_) {
        events_->close();
        events_.reset();
    }
    boost::system::error_code ignored;
    socket_.shutdown(asio::socket_base::shutdown_both, ignored);
    socket_.close(ignored);
    idle_.cancel();
    server_.on_closed(this);
}

}  // namespace hbsd::daemon
