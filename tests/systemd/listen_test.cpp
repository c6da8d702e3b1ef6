// Socket activation the way systemd does it: the listening socket is fd 3 of a new process
// whose environment says LISTEN_FDS=1 and LISTEN_PID=<its own pid>. The test forks, arranges
// exactly that in the child, and the child reports through its exit status.
#include "systemd/listen.hpp"
#include "protocol/error.hpp"
#include "tests/support/catch.hpp"
#include "tests/support/temp_dir.hpp"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

using hbsd::systemd::activated_socket;
using hbsd::test::TempDir;

namespace {

sockaddr_un address(const std::string& path) {
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strncpy(a.sun_path, path.c_str(), sizeof a.sun_path - 1);
    return a;
}

int unix_socket(int type, const std::string& path, bool listening) {
    const int fd = ::socket(AF_UNIX, type | SOCK_CLOEXEC, 0);
    REQUIRE(fd >= 0);
    auto a = address(path);
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    if (listening) REQUIRE(::listen(fd, 16) == 0);
    return fd;
}

// Forks; the child gets `fds` as 3, 4, ..., LISTEN_FDS=<count> (or `listen_fds` when given)
// and LISTEN_PID=<its pid> (or its parent's when `foreign_pid`), runs `body` and exits with
// its result. Returns the child's exit status (-1 when it died otherwise).
int activated_child(std::vector<int> fds, const std::function<int()>& body,
                    bool foreign_pid = false) {
    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        // Raise the sources above the target numbers first so that dup2 never overwrites one.
        for (auto& fd : fds) fd = ::fcntl(fd, F_DUPFD, 100);
        for (std::size_t i = 0; i < fds.size(); ++i)
            if (::dup2(fds[i], 3 + static_cast<int>(i)) < 0) ::_exit(100);
        ::setenv("LISTEN_FDS", std::to_string(fds.size()).c_str(), 1);
        ::setenv("LISTEN_PID", std::to_string(foreign_pid ? ::getppid() : ::getpid()).c_str(), 1);
        ::setenv("LISTEN_FDNAMES", "hbsd.socket", 1);
        int r = 99;
        try {
            r = body();
        } catch (...) {
            r = 98;
        }
        ::_exit(r);
    }
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// What the child checks after adopting the socket; 0 when all holds.
int adopted_and_serving() {
    const auto fd = activated_socket();
    if (!fd) return 10;
    if (*fd != 3) return 11;
    // Nothing the daemon starts later may think it was activated.
    if (std::getenv("LISTEN_FDS") || std::getenv("LISTEN_PID") || std::getenv("LISTEN_FDNAMES"))
        return 12;
    if (!(::fcntl(*fd, F_GETFD) & FD_CLOEXEC)) return 13;
    const int c = ::accept(*fd, nullptr, nullptr);
    if (c < 0) return 14;
    if (::write(c, "hi", 2) != 2) return 15;
    ::close(c);
    return 0;
}

}  // namespace

TEST_CASE("listen: adopts the listening AF_UNIX socket passed as fd 3", "[listen]") {
    const TempDir d("hbsd-listen-");
    const std::string path = (d / "hbsd.sock").string();
    const int listener = unix_socket(SOCK_STREAM, path, true);
    // A client that connected before the daemon ran waits in the backlog, as with systemd.
    const int client = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    auto a = address(path);
    REQUIRE(::connect(client, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);

    CHECK(activated_child({listener}, adopted_and_serving) == 0);
    char buf[2] = {};
    CHECK(::read(client, buf, 2) == 2);
    CHECK(std::string(buf, 2) == "hi");
    ::close(client);
    ::close(listener);
}

TEST_CASE("listen: nothing passed means bind yourself", "[listen]") {
    ::unsetenv("LISTEN_FDS");
    ::unsetenv("LISTEN_PID");
    CHECK_FALSE(activated_socket());
}

TEST_CASE("listen: descriptors meant for another process are not taken", "[listen]") {
    const TempDir d("hbsd-listen-");
    const int listener = unix_socket(SOCK_STREAM, (d / "hbsd.sock").string(), true);
    CHECK(activated_child(
              {listener}, [] { return activated_socket() ? 1 : 0; }, /*foreign_pid=*/true) == 0);
    ::close(listener);
}

TEST_CASE("listen: a wrong socket from the unit is an error, not a fallback", "[listen]") {
    const TempDir d("hbsd-listen-");
    const auto refused = [] {
        try {
            activated_socket();
            return 1;
        } catch (const hbsd::Error& e) {
            return e.code() == hbsd::Errc::Internal ? 0 : 2;
        }
    };
    SECTION("a datagram socket") {
        const int fd = unix_socket(SOCK_DGRAM, (d / "dgram").string(), false);
        CHECK(activated_child({fd}, refused) == 0);
        ::close(fd);
    }
    SECTION("a stream socket that does not listen") {
        const int fd = unix_socket(SOCK_STREAM, (d / "stream").string(), false);
        CHECK(activated_child({fd}, refused) == 0);
        ::close(fd);
    }
    SECTION("not a socket") {
        const int fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
        CHECK(activated_child({fd}, refused) == 0);
        ::close(fd);
    }
    SECTION("two sockets where the unit declares one") {
        const int a = unix_socket(SOCK_STREAM, (d / "a").string(), true);
        const int b = unix_socket(SOCK_STREAM, (d / "b").string(), true);
        CHECK(activated_child({a, b}, refused) == 0);
        ::close(a);
        ::close(b);
    }
}
