#include "protocol/client.hpp"

#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>

#include <cerrno>
#include <cstring>

namespace hbsd::protocol {
namespace json = boost::json;

UniqueFd connect_unix(const std::string& path) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (path.size() >= sizeof addr.sun_path) throw ConnectionError("socket path too long: " + path);
    std::memcpy(addr.sun_path, path.data(), path.size());
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd) throw ConnectionError(std::string("socket: ") + std::strerror(errno));
    int rc;
    do {
        rc = ::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr);
    } while (rc != 0 && errno == EINTR);
    if (rc != 0) throw ConnectionError("connect " + path + ": " + std::strerror(errno));
    return fd;
}

Client Client::connect(const std::string& socket_path, std::size_t max_reply_bytes) {
    return Client(connect_unix(socket_path), max_reply_bytes);
}

Client::Client(UniqueFd fd, std::size_t max_reply_bytes)
    : fd_(std::move(fd)), decoder_(max_reply_bytes) {}

void Client::set_timeout(std::chrono::milliseconds timeout) {
    timeval tv{};
    tv.tv_sec = static_cast<time_t>(timeout.count() / 1000);
    tv.tv_usec = static_cast<suseconds_t>((timeout.count() % 1000) * 1000);
    ::setsockopt(fd_.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(fd_.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

void Client::send_raw(std::string_view bytes) {
    while (!bytes.empty()) {
        const ssize_t n = ::send(fd_.get(), bytes.data(), bytes.size(), MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR) continue;
            throw ConnectionError(std::string("send: ") + std::strerror(errno));
        }
        bytes.remove_prefix(static_cast<std::size_t>(n));
    }
}

std::optional<std::string> Client::read_frame() {
    char buf[65536];
    while (!decoder_.has_frame()) {
        const ssize_t n = ::recv(fd_.get(), buf, sizeof buf, 0);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) throw ConnectionError("timed out");
            throw ConnectionError(std::string("recv: ") + std::strerror(errno));
        }
        if (n == 0) return std::nullopt;
        if (decoder_.feed({buf, static_cast<std::size_t>(n)}) == FrameDecoder::Status::too_large)
            throw ConnectionError("reply larger than the client's limit");
    }
    return decoder_.next();
}

Reply Client::read_reply() {
    auto frame = read_frame();
    if (!frame) throw ConnectionError("connection closed by the daemon");
    try {
        return decode_reply(*frame);
    } catch (const std::exception& e) {
        throw ConnectionError(std::string("malformed reply: ") + e.what());
    }
}

json::object Client::call(std::string_view method, json::object parameters) {
    send_raw(encode_frame(encode_call({std::string(method), std::move(parameters)})));
    Reply r = read_reply();
    if (r.error) throw error_from_reply(r);
    return std::move(r.parameters);
}

void Client::call_more(std::string_view method, json::object parameters,
                       const std::function<void(const json::object&, bool)>& on_reply) {
    Call c{std::string(method), std::move(parameters)};
    c.more = true;
    send_raw(encode_frame(encode_call(c)));
    for (;;) {
        Reply r = read_reply();
        if (r.error) throw error_from_reply(r);
        on_reply(r.parameters, r.continues);
        if (!r.continues) return;
    }
}

void Client::call_oneway(std::string_view method, json::object parameters) {
    Call c{std::string(method), std::move(parameters)};
    c.oneway = true;
    send_raw(encode_frame(encode_call(c)));
}

}  // namespace hbsd::protocol
