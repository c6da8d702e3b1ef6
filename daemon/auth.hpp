// Who is calling, and what they may do. The identity comes from the kernel (SO_PEERCRED, taken
// when the peer connected), never from anything the peer says.
#pragma once

#include "daemon/capability.hpp"
#include "daemon/config.hpp"

#include <sys/types.h>

#include <vector>

namespace hbsd::daemon {

struct Caller {
    uid_t uid = static_cast<uid_t>(-1);
    gid_t gid = static_cast<gid_t>(-1);
    pid_t pid = 0;
    // What the access rules in force grant; the connection works it out again from `groups`
    // for each call, so that a reload (SIGHUP) applies to connections already open.
    CapabilitySet capabilities = 0;
    // The uid's groups, looked up once when it connected (NSS may block; a call must not).
    std::vector<gid_t> groups;
};

struct PeerCredentials {
    uid_t uid;
    gid_t gid;
    pid_t pid;
};

// SO_PEERCRED of a connected AF_UNIX socket; throws std::system_error.
PeerCredentials peer_credentials(int fd);

// The uid's primary and supplementary groups (getgrouplist on its passwd entry); just `gid`
// for a uid without a passwd entry.
std::vector<gid_t> groups_of(uid_t uid, gid_t gid);

// The union of the capabilities the rules grant to this uid or any of its groups.
CapabilitySet capabilities_for(const std::vector<AccessRule>& rules, uid_t uid,
                               const std::vector<gid_t>& groups);

// Everything above for a freshly accepted connection.
Caller identify(int fd, const std::vector<AccessRule>& rules);

}  // namespace hbsd::daemon
