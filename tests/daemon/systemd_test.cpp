// hbsd under a service manager: READY/STOPPING/WATCHDOG notifications, and SIGHUP reloading
// the trust anchors without a restart.
#include "harness.hpp"
#include "tests/support/catch.hpp"

#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <cstring>
#include <thread>

using namespace hbsd;
using namespace hbsd::test;
using namespace std::chrono_literals;
namespace json = boost::json;

namespace {

// A datagram socket standing in for systemd's $NOTIFY_SOCKET.
class NotifySocket {
  public:
    explicit NotifySocket(const fs::path& path) : path_(path) {
        fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        sockaddr_un a{};
        a.sun_family = AF_UNIX;
        std::strncpy(a.sun_path, path.c_str(), sizeof a.sun_path - 1);
        REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
        timeval tv{0, 100000};
        ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    }
    ~NotifySocket() {
        ::close(fd_);
        ::unlink(path_.c_str());
    }
    // Every message received within `for_how_long`.
    std::vector<std::string> drain(std::chrono::milliseconds for_how_long) {
        std::vector<std::string> out;
        const auto end = std::chrono::steady_clock::now() + for_how_long;
        char buf[4096];
        while (std::chrono::steady_clock::now() < end) {
            const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
            if (n > 0) out.emplace_back(buf, static_cast<std::size_t>(n));
        }
        return out;
    }

  private:
    fs::path path_;
    int fd_;
};

int count(const std::vector<std::string>& messages, const std::string& what) {
    int n = 0;
    for (const auto& m : messages) n += m.find(what) != std::string::npos;
    return n;
}

}  // namespace

TEST_CASE("systemd: READY, WATCHDOG from the event loop, STOPPING") {
    char tmpl[] = "/tmp/hbsd-notify-XXXXXX";
    REQUIRE(::mkdtemp(tmpl));
    const fs::path notify = fs::path(tmpl) / "notify.sock";
    NotifySocket ns(notify);
    // WatchdogSec=1s: the daemon must feed it about every 500 ms.
    Daemon d(DaemonOptions().setenv("NOTIFY_SOCKET", notify.string()).setenv("WATCHDOG_USEC", "1000000"));
    auto first = ns.drain(2200ms);
    CHECK(count(first, "READY=1") == 1);
    CHECK(count(first, "WATCHDOG=1") >= 3);
    CHECK(d.terminate() == 0);
    auto last = ns.drain(300ms);
    CHECK(count(last, "STOPPING=1") == 1);
    fs::remove_all(tmpl);
}

TEST_CASE("systemd: SIGHUP reloads the trust anchors") {
    Daemon d;
    // Replace the test CA by an unrelated root: after a reload, the test keys are untrusted.
    const auto anchors = d.dir() / "anchors";
    const std::string other = (anchors / "other.pem").string();
    REQUIRE(std::system(("openssl req -x509 -newkey rsa:2048 -nodes -keyout /dev/null -subj "
                         "'/CN=Unrelated Root' -days 2 -out '" + other + "' 2>/dev/null").c_str()) == 0);
    fs::rename(anchors / "ca.pem", d.dir() / "ca.pem.away");

    auto c = d.client();
    const std::string session(c.call(std::string(kSigner) + "OpenSession",
                                     {{"token", d.token_uri()}, {"pin", kPin}})
                                  .at("session")
                                  .as_string());
    auto sign = [&] {
        return outcome([&] {
            c.call(std::string(kSigner) + "Sign",
                   sign_params(session, d.key_uri("gvbm-TOAN"), "subject_teacher", fixture(), "TOAN"));
        });
    };
    CHECK(sign() == "ok");  // nothing reloaded yet: the test CA is still in force
    ::kill(d.pid(), SIGHUP);
    std::string after = "ok";
    for (int i = 0; i < 50 && after == "ok"; ++i) {
        std::this_thread::sleep_for(50ms);
        after = sign();
    }
    CHECK(after == "vn.hocbaso.Signer.PolicyViolation");

    fs::rename(d.dir() / "ca.pem.away", anchors / "ca.pem");
    ::kill(d.pid(), SIGHUP);
    std::string back = after;
    for (int i = 0; i < 50 && back != "ok"; ++i) {
        std::this_thread::sleep_for(50ms);
        back = sign();
    }
    CHECK(back == "ok");
    // An unreadable anchor set is refused and the previous one kept.
    fs::remove(anchors / "ca.pem");
    fs::remove(anchors / "other.pem");
    ::kill(d.pid(), SIGHUP);
    std::this_thread::sleep_for(300ms);
    CHECK(sign() == "ok");
    CHECK(d.log().find("reload failed") != std::string::npos);
    CHECK(d.terminate() == 0);
}
