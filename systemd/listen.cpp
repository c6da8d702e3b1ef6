#include "systemd/listen.hpp"

#include "protocol/error.hpp"

#include <sys/socket.h>
#include <systemd/sd-daemon.h>

#include <cstring>
#include <string>

namespace hbsd::systemd {

std::optional<int> activated_socket() {
    const int n = sd_listen_fds(1);
    if (n < 0)
        throw Error::internal(std::string("socket activation: sd_listen_fds: ") +
                              std::strerror(-n));
    if (n == 0) return std::nullopt;
    if (n > 1)
        throw Error::internal("socket activation: " + std::to_string(n) +
                              " descriptors passed, hbsd.socket declares one");
    const int fd = SD_LISTEN_FDS_START;
    const int r = sd_is_socket_unix(fd, SOCK_STREAM, 1, nullptr, 0);
    if (r < 0) throw Error::internal(std::string("socket activation: fd 3: ") + std::strerror(-r));
    if (r == 0)
        throw Error::internal(
            "socket activation: fd 3 is not a listening AF_UNIX stream socket "
            "(hbsd.socket needs ListenStream=/path and Accept=no)");
    return fd;
}

}  // namespace hbsd::systemd
