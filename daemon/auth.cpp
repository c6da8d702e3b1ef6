#include "daemon/auth.hpp"

#include <grp.h>
#include <pwd.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <system_error>

namespace hbsd::daemon {

PeerCredentials peer_credentials(int fd) {
    ucred cred{};
    socklen_t len = sizeof cred;
    if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0)
        throw std::system_error(errno, std::generic_category(), "SO_PEERCRED");
    return {cred.uid, cred.gid, cred.pid};
}

std::vector<gid_t> groups_of(uid_t uid, gid_t gid) {
    passwd pw{}, *res = nullptr;
    std::vector<char> buf(16384);
    if (getpwuid_r(uid, &pw, buf.data(), buf.size(), &res) != 0 || !res) return {gid};
    int n = 64;
    std::vector<gid_t> groups(static_cast<std::size_t>(n));
    // getgrouplist reports the needed size when the buffer is too small; retry once with it.
    for (int attempt = 0; attempt < 3; ++attempt) {
        int count = n;
        if (getgrouplist(pw.pw_name, gid, groups.data(), &count) >= 0) {
            groups.resize(static_cast<std::size_t>(count));
            return groups;
        }
        n = std::max(count, n * 2);
        groups.resize(static_cast<std::size_t>(n));
    }
    return {gid};
}

CapabilitySet capabilities_for(const std::vector<AccessRule>& rules, uid_t uid,
                               const std::vector<gid_t>& groups) {
    CapabilitySet caps = 0;
    for (const auto& r : rules) {
        if (r.uid && *r.uid == uid) caps |= r.capabilities;
        if (r.gid && std::find(groups.begin(), groups.end(), *r.gid) != groups.end())
            caps |= r.capabilities;
    }
    return caps;
}

Caller identify(int fd, const std::vector<AccessRule>& rules) {
    const auto cred = peer_credentials(fd);
    auto groups = groups_of(cred.uid, cred.gid);
    const auto caps = capabilities_for(rules, cred.uid, groups);
    return {cred.uid, cred.gid, cred.pid, caps, std::move(groups)};
}

}  // namespace hbsd::daemon
