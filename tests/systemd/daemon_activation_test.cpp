// The real hbsd binary started the way systemd starts hbsd.service: the listening socket of
// hbsd.socket as fd 3 with LISTEN_FDS=1 and LISTEN_PID=<hbsd's pid>, and a NOTIFY_SOCKET that
// this test binds. It must serve on the passed socket (never bind its configured path), say
// READY=1 once it does, STOPPING=1 on SIGTERM, exit 0, and leave the socket file to systemd.
// (Watchdog and SIGHUP under NOTIFY_SOCKET are in tests/daemon/systemd_test.cpp.)
#include "protocol/client.hpp"
#include "tests/support/catch.hpp"
#include "tests/support/temp_dir.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>

namespace {

sockaddr_un address(const std::string& path) {
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strncpy(a.sun_path, path.c_str(), sizeof a.sun_path - 1);
    return a;
}

int bound(int type, const std::string& path) {
    const int fd = ::socket(AF_UNIX, type | SOCK_CLOEXEC, 0);
    REQUIRE(fd >= 0);
    auto a = address(path);
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    return fd;
}

class ActivatedDaemon {
  public:
    ActivatedDaemon() {
        socket_ = dir_ + "/hbsd.sock";
        // The configured path is never used when systemd passes the socket.
        std::ofstream(dir_ + "/hbsd.toml") << "state_dir = \"" << dir_ << "\"\n[socket]\npath = \""
                                           << dir_ << "/configured.sock\"\n";
        listener_ = bound(SOCK_STREAM, socket_);
        REQUIRE(::listen(listener_, 16) == 0);
        notify_ = bound(SOCK_DGRAM, dir_ + "/notify");
        timeval tv{1, 0};
        ::setsockopt(notify_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);

        pid_ = ::fork();
        REQUIRE(pid_ >= 0);
        if (pid_ == 0) {
            // Through a high number first: the listener may be fd 3 already, and dup2 onto
            // itself would keep close-on-exec.
            const int high = ::fcntl(listener_, F_DUPFD_CLOEXEC, 100);
            if (high < 0 || ::dup2(high, 3) != 3) ::_exit(126);  // dup2 clears close-on-exec
            const std::string pid = std::to_string(::getpid());  // exec keeps it
            ::setenv("LISTEN_FDS", "1", 1);
            ::setenv("LISTEN_PID", pid.c_str(), 1);
            ::setenv("NOTIFY_SOCKET", (dir_ + "/notify").c_str(), 1);
            const std::string log = dir_ + "/hbsd.log";
            if (!std::freopen(log.c_str(), "w", stderr)) ::_exit(125);
            ::execl(HBSD_BINARY, "hbsd", "--config", (dir_ + "/hbsd.toml").c_str(),
                    static_cast<char*>(nullptr));
            ::_exit(127);
        }
    }
    ~ActivatedDaemon() {
        if (pid_ > 0) {
            ::kill(pid_, SIGKILL);
            ::waitpid(pid_, nullptr, 0);
        }
        ::close(listener_);
        ::close(notify_);
    }

    // Waits up to `seconds` for a notification holding the line `line`.
    bool expect(const std::string& line, int seconds = 30) {
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
        while (std::chrono::steady_clock::now() < deadline) {
            char buf[4096];
            const ssize_t n = ::recv(notify_, buf, sizeof buf, 0);
            if (n <= 0) continue;
            const std::string m = "\n" + std::string(buf, static_cast<std::size_t>(n)) + "\n";
            if (m.find("\n" + line + "\n") != std::string::npos) return true;
        }
        return false;
    }
    int stop() {
        REQUIRE(::kill(pid_, SIGTERM) == 0);
        CHECK(expect("STOPPING=1"));
        int status = 0;
        REQUIRE(::waitpid(pid_, &status, 0) == pid_);
        pid_ = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    }
    std::string log() const {
        std::ifstream f(dir_ + "/hbsd.log");
        return std::string(std::istreambuf_iterator<char>(f), {});
    }
    const std::string& socket() const { return socket_; }
    const std::string& dir() const { return dir_; }

  private:
    // First: removed last, after the destructor has killed the daemon writing in it.
    hbsd::test::TempDir tmp_{"hbsd-activation-"};
    std::string dir_ = tmp_.path().string(), socket_;
    int listener_ = -1, notify_ = -1;
    pid_t pid_ = -1;
};

}  // namespace

TEST_CASE("hbsd activated by systemd: READY=1, serves fd 3, STOPPING=1, exit 0", "[activation]") {
    ActivatedDaemon d;
    if (!d.expect("READY=1")) FAIL("no READY=1; hbsd's log:\n" << d.log());
    boost::json::object info;
    // Busy means "retry after retry_after_ms" in the contract; a front-end does so.
    for (int attempt = 1;; ++attempt) {
        try {
            auto c = hbsd::protocol::Client::connect(d.socket());
            info = c.call("org.varlink.service.GetInfo");
            break;
        } catch (const hbsd::Error& e) {
            if (e.code() != hbsd::Errc::Busy || attempt == 5)
                FAIL("GetInfo on the passed socket: " << e.what() << "\nhbsd's log:\n" << d.log());
            WARN("hbsd answered Busy on attempt " << attempt);
            std::this_thread::sleep_for(std::chrono::milliseconds(200));
        } catch (const std::exception& e) {
            FAIL("GetInfo on the passed socket: " << e.what() << "\nhbsd's log:\n" << d.log());
        }
    }
    CHECK(info.at("interfaces").as_array().size() >= 1);
    // It did not bind a socket of its own.
    CHECK_FALSE(::access((d.dir() + "/configured.sock").c_str(), F_OK) == 0);
    CHECK(d.stop() == 0);
    // The socket file belongs to hbsd.socket: it must outlive a restart of the service.
    CHECK(::access(d.socket().c_str(), F_OK) == 0);
}
