// Blocking Varlink client over an AF_UNIX stream socket, used by hbsctl and the tests.
// One Client is one connection; calls on it are sequential (Varlink answers in order).
#pragma once

#include "protocol/codec.hpp"
#include "protocol/frame.hpp"
#include "protocol/unique_fd.hpp"

#include <boost/json.hpp>
#include <chrono>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

namespace hbsd::protocol {

// The connection could not be made, broke, or the peer spoke something other than Varlink.
// Replies that are Varlink errors are thrown as hbsd::Error instead.
class ConnectionError : public std::runtime_error {
  public:
    using std::runtime_error::runtime_error;
};

class Client {
  public:
    static constexpr std::size_t kDefaultMaxReply = 256u << 20;

    static Client connect(const std::string& socket_path,
                          std::size_t max_reply_bytes = kDefaultMaxReply);
    // Takes an already connected socket (e.g. made by a test in a child process).
    explicit Client(UniqueFd fd, std::size_t max_reply_bytes = kDefaultMaxReply);

    // One call, one reply. Throws hbsd::Error for an error reply, ConnectionError otherwise.
    boost::json::object call(std::string_view method, boost::json::object parameters = {});
    // A call with "more": true; on_reply sees each reply, with continues = false on the last.
    // An error reply (at any point) is thrown after the replies before it were delivered.
    void call_more(std::string_view method, boost::json::object parameters,
                   const std::function<void(const boost::json::object&, bool continues)>& on_reply);
    // "oneway": true; nothing comes back.
    void call_oneway(std::string_view method, boost::json::object parameters = {});

    // Low level, for tests of the daemon's framing.
    void send_raw(std::string_view bytes);
    // The next frame, or nullopt when the peer closed the connection.
    std::optional<std::string> read_frame();
    Reply read_reply();
    // 0 = wait forever. A timed-out read throws ConnectionError.
    void set_timeout(std::chrono::milliseconds timeout);
    int native_handle() const noexcept { return fd_.get(); }

  private:
    UniqueFd fd_;
    FrameDecoder decoder_;
};

// Connects an AF_UNIX stream socket; throws ConnectionError with errno's text.
UniqueFd connect_unix(const std::string& socket_path);

}  // namespace hbsd::protocol
