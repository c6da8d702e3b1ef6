// hbsd under a service manager: READY/STOPPING/WATCHDOG notifications, and SIGHUP reloading
// hbsd.toml (access rules, limits, trust anchors, log_level) without a restart, without dropping
// connections, sessions, running calls or watchers, and keeping everything on a bad file.
#include "harness.hpp"
#include "tests/cards/support.hpp"
#include "tests/support/catch.hpp"
#include "tests/support/temp_dir.hpp"

#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <algorithm>
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

// Index of the first message containing `what` at or after `from`; -1 if none.
long find(const std::vector<std::string>& messages, const std::string& what, std::size_t from = 0) {
    for (std::size_t i = from; i < messages.size(); ++i)
        if (messages[i].find(what) != std::string::npos) return static_cast<long>(i);
    return -1;
}

// Messages until one contains `what` (included), or all those of `timeout`.
std::vector<std::string> until(NotifySocket& ns, const std::string& what,
                               std::chrono::milliseconds timeout = 15000ms) {
    std::vector<std::string> out;
    const auto end = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < end) {
        for (auto& m : ns.drain(100ms)) {
            out.push_back(std::move(m));
            if (out.back().find(what) != std::string::npos) return out;
        }
    }
    return out;
}

// A client under another uid that stays connected across reloads: a forked child drops to
// `uid` before connecting, then runs the parent's commands on that one connection and answers
// each with outcome(): "open" (OpenSession, kept), "sign" (Sign with it), "status".
class Peer {
  public:
    Peer(Daemon& d, uid_t uid) {
        const std::string socket = d.socket(), token = d.token_uri(), key = d.key_uri("gvbm-TOAN");
        int sv[2];
        REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
        pid_ = ::fork();
        REQUIRE(pid_ >= 0);
        if (pid_ == 0) {
            ::close(sv[0]);
            if (::setgroups(0, nullptr) != 0 || ::setresgid(uid, uid, uid) != 0 ||
                ::setresuid(uid, uid, uid) != 0)
                ::_exit(2);
            serve(sv[1], socket, token, key);
            ::_exit(0);
        }
        ::close(sv[1]);
        fd_ = sv[0];
    }
    ~Peer() {
        ::close(fd_);
        ::waitpid(pid_, nullptr, 0);
    }
    std::string operator()(const std::string& command) {
        const std::string line = command + "\n";
        REQUIRE(::write(fd_, line.data(), line.size()) == static_cast<ssize_t>(line.size()));
        return read_line(fd_);
    }

  private:
    static std::string read_line(int fd) {
        std::string s;
        char c;
        while (::read(fd, &c, 1) == 1 && c != '\n') s += c;
        return s;
    }
    static void serve(int fd, const std::string& socket, const std::string& token,
                      const std::string& key) {
        auto c = protocol::Client::connect(socket);
        c.set_timeout(120s);
        std::string session;
        for (std::string cmd = read_line(fd); !cmd.empty(); cmd = read_line(fd)) {
            std::string r = outcome([&] {
                if (cmd == "open")
                    session = std::string(c.call(std::string(kSigner) + "OpenSession",
                                                 {{"token", token}, {"pin", kPin}})
                                              .at("session")
                                              .as_string());
                else if (cmd == "sign")
                    c.call(std::string(kSigner) + "Sign",
                           sign_params(session, key, "subject_teacher", fixture(), "TOAN"));
                else
                    c.call(std::string(kSigner) + "Status");
            });
            r += "\n";
            if (::write(fd, r.data(), r.size()) < 0) return;
        }
    }
    pid_t pid_ = -1;
    int fd_ = -1;
};

constexpr const char* kDenied = "vn.hocbaso.Signer.PermissionDenied";

// Connects, says nothing, and returns once hbsd has hung up on the idle connection.
void idle_until_closed(Daemon& d) {
    const auto fd = protocol::connect_unix(d.socket());
    pollfd p{fd.get(), POLLIN, 0};
    REQUIRE(::poll(&p, 1, 15000) == 1);
    char c;
    REQUIRE(::read(fd.get(), &c, 1) == 0);
}

// How often `what` stands in `log`.
int occurrences(const std::string& log, const std::string& what) {
    int n = 0;
    for (auto pos = log.find(what); pos != std::string::npos; pos = log.find(what, pos + 1)) ++n;
    return n;
}

}  // namespace

TEST_CASE("systemd: READY, WATCHDOG from the event loop, STOPPING") {
    const TempDir tmp("hbsd-notify-");
    const fs::path notify = tmp / "notify.sock";
    NotifySocket ns(notify);
    // WatchdogSec=1s: the daemon must feed it about every 500 ms.
    Daemon d(DaemonOptions()
                 .setenv("NOTIFY_SOCKET", notify.string())
                 .setenv("WATCHDOG_USEC", "1000000"));
    auto first = ns.drain(2200ms);
    CHECK(count(first, "READY=1") == 1);
    CHECK(count(first, "WATCHDOG=1") >= 3);
    CHECK(d.terminate() == 0);
    auto last = ns.drain(300ms);
    CHECK(count(last, "STOPPING=1") == 1);
}

TEST_CASE("systemd: SIGHUP reloads the trust anchors") {
    Daemon d;
    // Replace the test CA by an unrelated root: after a reload, the test keys are untrusted.
    const auto anchors = d.dir() / "anchors";
    const std::string other = (anchors / "other.pem").string();
    REQUIRE(std::system(("openssl req -x509 -newkey rsa:2048 -nodes -keyout /dev/null -subj "
                         "'/CN=Unrelated Root' -days 2 -out '" +
                         other + "' 2>/dev/null")
                            .c_str()) == 0);
    fs::rename(anchors / "ca.pem", d.dir() / "ca.pem.away");

    auto c = d.client();
    const std::string session(
        c.call(std::string(kSigner) + "OpenSession", {{"token", d.token_uri()}, {"pin", kPin}})
            .at("session")
            .as_string());
    auto sign = [&] {
        return outcome([&] {
            c.call(
                std::string(kSigner) + "Sign",
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

TEST_CASE(
    "systemd: SIGHUP reloads the access rules - connections, sessions, calls, watchers live on") {
    const TempDir tmp("hbsd-notify-");
    NotifySocket ns(tmp / "notify.sock");
    auto options = DaemonOptions()
                       .with_faults()
                       .grant(kNobody, R"(["read"])")
                       .setenv("NOTIFY_SOCKET", (tmp / "notify.sock").string());
    Daemon d(options);
    REQUIRE(count(until(ns, "READY=1"), "READY=1") == 1);

    auto c = d.client();
    const auto session = cards::open_session(d, c);
    cards::Watch watch(d);
    cards::settle();
    Peer nobody(d, kNobody);
    CHECK(nobody("status") == "ok");
    CHECK(nobody("open") == kDenied);  // read only

    // A batch runs across the reload (slowed down at the token) on its own connection.
    d.set_faults("sign_delay_ms=150\n");
    json::object batch;
    std::thread running([&] {
        auto c2 = d.client();
        batch = c2.call(cards::M("SignBatch"),
                        cards::batch_params(d, session, cards::batch_items(6, "across-")));
    });
    std::this_thread::sleep_for(300ms);

    // sign for nobody (at once); worker_threads (needs a restart: kept and named in the log).
    options.grant(kNobody, R"(["sign"])").limit("worker_threads", 2);
    d.reconfigure(options);
    const auto before = watch.events().size();
    REQUIRE(::kill(d.pid(), SIGHUP) == 0);
    const auto messages = until(ns, "READY=1");
    const long reloading = find(messages, "RELOADING=1");
    REQUIRE(reloading >= 0);
    const long ready = find(messages, "READY=1", static_cast<std::size_t>(reloading));
    CHECK(ready > reloading);
    CHECK(find(messages, "STATUS=serving; configuration reloaded, some changes need a restart") >
          reloading);

    running.join();
    REQUIRE(batch.at("results").as_array().size() == 6);
    for (const auto& r : batch.at("results").as_array()) CHECK(r.as_object().contains("document"));
    d.set_faults("");

    // The same connection of nobody now may sign.
    CHECK(nobody("open") == "ok");
    CHECK(nobody("sign") == "ok");
    // The session opened before the reload still signs, and the watcher still hears.
    CHECK(outcome([&] {
              c.call(cards::M("Sign"), sign_params(session, d.key_uri("gvbm-TOAN"),
                                                   "subject_teacher", fixture(), "TOAN"));
          }) == "ok");
    CHECK(watch.wait_for("signed", {}, before) >= static_cast<long>(before));
    const auto log = d.log();
    CHECK(log.find("limits.worker_threads needs a restart, keeping 4") != std::string::npos);
    CHECK(log.find("reload: [[access]]") != std::string::npos);
    CHECK(d.terminate() == 0);
}

TEST_CASE("systemd: a bad hbsd.toml on SIGHUP changes nothing, the daemon serves on") {
    const TempDir tmp("hbsd-notify-");
    NotifySocket ns(tmp / "notify.sock");
    const auto options = DaemonOptions()
                             .grant(kNobody, R"(["sign"])")
                             .setenv("NOTIFY_SOCKET", (tmp / "notify.sock").string());
    Daemon d(options);
    REQUIRE(count(until(ns, "READY=1"), "READY=1") == 1);
    Peer nobody(d, kNobody);
    CHECK(nobody("open") == "ok");

    // nobody's rule gone, and a typo in a rule further down: the whole file is refused, so
    // nobody keeps sign.
    std::string bad = d.config_text(DaemonOptions());
    const auto line = std::count(bad.begin(), bad.end(), '\n') + 4;
    bad += "\n[[access]]\nuser = 65534\ncapabilities = [\"sing\"]\n";
    d.write_config(bad);
    REQUIRE(::kill(d.pid(), SIGHUP) == 0);
    auto messages = until(ns, "READY=1");
    const long reloading = find(messages, "RELOADING=1");
    REQUIRE(reloading >= 0);
    CHECK(find(messages, "READY=1", static_cast<std::size_t>(reloading)) > reloading);
    CHECK(find(messages, "STATUS=serving; reload failed, keeping the running configuration: " +
                             (d.dir() / "hbsd.toml").string() + ":" + std::to_string(line) + ":") >
          reloading);
    const auto log = d.log();
    CHECK(log.find("reload failed, keeping the running configuration: " +
                   (d.dir() / "hbsd.toml").string() + ":" + std::to_string(line) + ":") !=
          std::string::npos);
    CHECK(log.find("unknown capability 'sing'") != std::string::npos);
    CHECK(nobody("sign") == "ok");
    auto fresh = d.client();
    CHECK(outcome([&] { fresh.call(cards::M("Status")); }) == "ok");

    // TOML that does not even parse: the same.
    d.write_config(d.config_text(DaemonOptions()) + "\n[limits\n");
    REQUIRE(::kill(d.pid(), SIGHUP) == 0);
    messages = until(ns, "READY=1");
    CHECK(find(messages, "STATUS=serving; reload failed") >= 0);
    CHECK(nobody("sign") == "ok");

    // The good file without nobody's rule: refused from the next call on, same connection.
    d.reconfigure(DaemonOptions());
    REQUIRE(::kill(d.pid(), SIGHUP) == 0);
    messages = until(ns, "READY=1");
    CHECK(find(messages, "STATUS=serving; configuration reloaded") >= 0);
    CHECK(nobody("sign") == kDenied);
    CHECK(nobody("status") == kDenied);
    CHECK(d.terminate() == 0);
}

TEST_CASE("systemd: SIGHUP changes log_level - debug lines only while it says debug") {
    const TempDir tmp("hbsd-notify-");
    NotifySocket ns(tmp / "notify.sock");
    // Without --verbose (the harness drops it with a log_level), which would log debug lines
    // whatever the file says. An idle connection is closed after a second and hbsd logs that at
    // debug level (connection.cpp): the debug line an ordinary caller causes.
    auto options = DaemonOptions()
                       .with_log_level("info")
                       .limit("idle_timeout_s", 1)
                       .setenv("NOTIFY_SOCKET", (tmp / "notify.sock").string());
    Daemon d(options);
    REQUIRE(count(until(ns, "READY=1"), "READY=1") == 1);
    const std::string idle = "uid=0 pid=" + std::to_string(::getpid()) + ": idle, closing";
    auto reload = [&](const std::string& level) {
        d.reconfigure(options.with_log_level(level));
        REQUIRE(::kill(d.pid(), SIGHUP) == 0);
        const auto messages = until(ns, "READY=1");
        const long reloading = find(messages, "RELOADING=1");
        REQUIRE(reloading >= 0);
        REQUIRE(find(messages, "STATUS=serving; configuration reloaded",
                     static_cast<std::size_t>(reloading)) > reloading);
    };

    // info: the connection is closed as idle, and nothing says so.
    idle_until_closed(d);
    CHECK(occurrences(d.log(), idle) == 0);
    CHECK(occurrences(d.log(), "<7>") == 0);
    CHECK(occurrences(d.log(), "<6>") > 0);  // info lines are there: the log is being written

    reload("debug");
    CHECK(occurrences(d.log(), "reload: log_level: info -> debug") == 1);
    idle_until_closed(d);
    CHECK(occurrences(d.log(), "<7>hbsd: " + idle) == 1);

    // And back: the next idle close is silent again.
    reload("info");
    const int debug_lines = occurrences(d.log(), "<7>");
    idle_until_closed(d);
    CHECK(occurrences(d.log(), idle) == 1);
    CHECK(occurrences(d.log(), "<7>") == debug_lines);
    CHECK(d.terminate() == 0);
}
