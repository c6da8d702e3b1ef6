// One client connection. Lives on the server's I/O thread; a call that runs on the worker pool
// keeps the connection alive through a shared_ptr until its reply has been handed back.
//
// Calls on one connection are answered in order, one at a time (Varlink's rule); frames that
// arrive meanwhile wait in the decoder, no more is read until they are handled, and the next
// call starts only when the previous reply has been written, so a pipelining client cannot
// make the daemon buffer more than a frame plus one read, and one reply.
#pragma once

#include "daemon/auth.hpp"
#include "daemon/events.hpp"
#include "protocol/frame.hpp"

#include <array>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/steady_timer.hpp>
#include <deque>
#include <memory>
#include <string>

namespace hbsd::daemon {

class Server;

class Connection : public std::enable_shared_from_this<Connection> {
  public:
    Connection(Server& server, boost::asio::local::stream_protocol::socket socket, Caller caller);
    void start();
    // Shutdown: close as soon as no call runs and every reply is written.
    void drain();
    void close() noexcept;

  private:
    void read();
    void on_read(const boost::system::error_code& ec, std::size_t n);
    void process();
    void dispatch(std::string frame);
    void finish_call(std::string reply_frame, bool send_reply);
    void send(std::string frame);
    void write_next();
    void arm_idle();
    void close_when_flushed();
    // WatchEvents: the connection follows the event bus until the peer hangs up (or sends
    // anything: a watching connection takes no further calls), see connection.cpp.
    void follow_events();
    void pump_events();

    Server& server_;
    boost::asio::local::stream_protocol::socket socket_;
    Caller caller_;
    protocol::FrameDecoder decoder_;
    std::array<char, 65536> buf_{};
    boost::asio::steady_timer idle_;
    std::deque<std::string> out_;
    bool reading_ = false;
    bool writing_ = false;
    bool in_call_ = false;
    bool peer_done_ = false;  // EOF or read error: no more calls will come
    bool close_after_flush_ = false;
    bool closed_ = false;
    std::shared_ptr<Subscription> events_;  // set while serving WatchEvents
};

}  // namespace hbsd::daemon
