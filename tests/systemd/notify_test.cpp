// sd_notify messages as systemd receives them: the test binds the AF_UNIX datagram socket
// that $NOTIFY_SOCKET names and reads what the helpers send.
#include "systemd/notify.hpp"
#include "tests/support/catch.hpp"
#include "tests/support/temp_dir.hpp"

#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <string>

using namespace hbsd::systemd;

namespace {

class NotifySocket {
  public:
    NotifySocket() {
        path_ = (dir_ / "notify").string();
        fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        REQUIRE(fd_ >= 0);
        sockaddr_un a{};
        a.sun_family = AF_UNIX;
        std::strncpy(a.sun_path, path_.c_str(), sizeof a.sun_path - 1);
        REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
        // A missing message fails the test instead of hanging it.
        timeval tv{2, 0};
        ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        ::setenv("NOTIFY_SOCKET", path_.c_str(), 1);
    }
    ~NotifySocket() {
        ::unsetenv("NOTIFY_SOCKET");
        ::close(fd_);
    }
    std::string receive() {
        char buf[4096];
        const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
        if (n < 0) return "<nothing: " + std::string(std::strerror(errno)) + ">";
        return std::string(buf, static_cast<std::size_t>(n));
    }

  private:
    // First: removed (with the socket file) after the destructor has closed the socket.
    hbsd::test::TempDir dir_{"hbsd-notify-"};
    std::string path_;
    int fd_ = -1;
};

}  // namespace

TEST_CASE("notify: READY, STATUS, WATCHDOG, STOPPING reach $NOTIFY_SOCKET", "[notify]") {
    NotifySocket s;
    CHECK(notify_ready());
    CHECK(s.receive() == "READY=1");
    CHECK(notify_status("serving, 2 tokens present"));
    CHECK(s.receive() == "STATUS=serving, 2 tokens present");
    CHECK(notify_watchdog());
    CHECK(s.receive() == "WATCHDOG=1");
    CHECK(notify_stopping());
    CHECK(s.receive() == "STOPPING=1");
}

TEST_CASE("notify: RELOADING carries the monotonic time systemd 253 asks for", "[notify]") {
    NotifySocket s;
    CHECK(notify_reloading());
    const auto m = s.receive();
    CHECK(m.rfind("RELOADING=1\nMONOTONIC_USEC=", 0) == 0);
    CHECK(m.size() > std::strlen("RELOADING=1\nMONOTONIC_USEC="));
}

TEST_CASE("notify: a status cannot smuggle in a second assignment", "[notify]") {
    NotifySocket s;
    CHECK(notify_status("reader \"evil\nREADY=1\"\r"));
    CHECK(s.receive() == "STATUS=reader \"evil READY=1\" ");
}

TEST_CASE("notify: without $NOTIFY_SOCKET every call is a no-op", "[notify]") {
    ::unsetenv("NOTIFY_SOCKET");
    CHECK_FALSE(notify_ready());
    CHECK_FALSE(notify_status("x"));
    CHECK_FALSE(notify_watchdog());
    CHECK_FALSE(notify_stopping());
}

TEST_CASE("notify: watchdog interval from $WATCHDOG_USEC for this pid only", "[notify]") {
    ::unsetenv("WATCHDOG_USEC");
    ::unsetenv("WATCHDOG_PID");
    CHECK_FALSE(watchdog_interval());

    ::setenv("WATCHDOG_USEC", "30000000", 1);
    ::setenv("WATCHDOG_PID", std::to_string(::getpid()).c_str(), 1);
    const auto i = watchdog_interval();
    REQUIRE(i);
    CHECK(*i == std::chrono::seconds(30));
    // The environment stays: the daemon may ask again (after a reload).
    CHECK(std::getenv("WATCHDOG_USEC"));

    // Inherited from a parent that systemd watches: not ours to feed.
    ::setenv("WATCHDOG_PID", std::to_string(::getppid()).c_str(), 1);
    CHECK_FALSE(watchdog_interval());
    ::unsetenv("WATCHDOG_USEC");
    ::unsetenv("WATCHDOG_PID");
}
