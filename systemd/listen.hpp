// Socket activation (sd_listen_fds(3)): adopt the listening socket hbsd.socket passes.
#pragma once

#include <optional>

namespace hbsd::systemd {

// The AF_UNIX stream listening socket systemd passed to this process (fd 3), or nullopt when
// nothing was passed ($LISTEN_FDS unset, or $LISTEN_PID names another process): the daemon
// then binds its configured path itself. The caller owns the descriptor (close-on-exec is
// set). $LISTEN_FDS, $LISTEN_PID and $LISTEN_FDNAMES are removed from the environment so
// that no child process (a PKCS#11 module spawning a helper) believes it was activated.
//
// Throws hbsd::Error (Internal) when systemd passed something unusable: more than one
// descriptor, or one that is not a listening AF_UNIX stream socket. A wrong unit must stop
// the daemon rather than make it bind a second socket beside the one clients use.
std::optional<int> activated_socket();

}  // namespace hbsd::systemd
