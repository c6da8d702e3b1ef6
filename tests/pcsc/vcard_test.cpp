// hbsd-vcard speaks vpcd's socket protocol: this test plays vpcd itself (fast, no pcscd), so a
// protocol slip shows here rather than as a reader that never sees a card.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "protocol/hex.hpp"
#include "tests/support/catch.hpp"
#include "tests/support/vcard/rig.hpp"

extern char** environ;

using namespace std::chrono_literals;
using Bytes = std::vector<unsigned char>;

namespace {

constexpr int patience_ms = 20000;

class Socket {
  public:
    explicit Socket(int fd = -1) : fd_(fd) {}
    ~Socket() {
        if (fd_ >= 0) close(fd_);
    }
    Socket(Socket&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
    Socket& operator=(Socket&& o) noexcept {
        std::swap(fd_, o.fd_);
        return *this;
    }
    int get() const { return fd_; }

  private:
    int fd_;
};

// Plays vpcd: listens on an ephemeral localhost port.
struct FakeVpcd {
    Socket listener{socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)};
    unsigned port = 0;

    FakeVpcd() {
        REQUIRE(listener.get() >= 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        REQUIRE(bind(listener.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
        REQUIRE(listen(listener.get(), 1) == 0);
        socklen_t len = sizeof a;
        REQUIRE(getsockname(listener.get(), reinterpret_cast<sockaddr*>(&a), &len) == 0);
        port = ntohs(a.sin_port);
    }

    Socket accept_card() {
        pollfd p{listener.get(), POLLIN, 0};
        REQUIRE(poll(&p, 1, patience_ms) == 1);
        Socket s(accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
        REQUIRE(s.get() >= 0);
        return s;
    }
};

bool read_exact(int fd, unsigned char* buf, std::size_t n) {
    while (n > 0) {
        pollfd p{fd, POLLIN, 0};
        if (poll(&p, 1, patience_ms) != 1) return false;
        const ssize_t r = recv(fd, buf, n, 0);
        if (r <= 0) return false;
        buf += r;
        n -= static_cast<std::size_t>(r);
    }
    return true;
}

void send_frame(int fd, const Bytes& body) {
    Bytes frame = {static_cast<unsigned char>(body.size() >> 8),
                   static_cast<unsigned char>(body.size() & 0xFF)};
    frame.insert(frame.end(), body.begin(), body.end());
    REQUIRE(send(fd, frame.data(), frame.size(), MSG_NOSIGNAL) ==
            static_cast<ssize_t>(frame.size()));
}

std::optional<Bytes> receive_frame(int fd) {
    unsigned char len[2];
    if (!read_exact(fd, len, 2)) return std::nullopt;
    Bytes body(static_cast<std::size_t>(len[0] << 8 | len[1]));
    if (!body.empty() && !read_exact(fd, body.data(), body.size())) return std::nullopt;
    return body;
}

Bytes exchange(int fd, const Bytes& apdu) {
    send_frame(fd, apdu);
    auto r = receive_frame(fd);
    REQUIRE(r);
    return *r;
}

class Card {
  public:
    explicit Card(std::vector<std::string> args) {
        args.insert(args.begin(), HBSD_VCARD);
        std::vector<char*> argv;
        for (auto& a : args) argv.push_back(a.data());
        argv.push_back(nullptr);
        REQUIRE(posix_spawn(&pid_, HBSD_VCARD, nullptr, nullptr, argv.data(), environ) == 0);
    }
    ~Card() {
        if (pid_ > 0) {
            kill(pid_, SIGKILL);
            waitpid(pid_, nullptr, 0);
        }
    }
    // SIGTERM; the exit status, or -1 if it did not exit in time.
    int terminate() {
        kill(pid_, SIGTERM);
        const auto deadline = std::chrono::steady_clock::now() + 10s;
        while (std::chrono::steady_clock::now() < deadline) {
            int status = 0;
            if (waitpid(pid_, &status, WNOHANG) == pid_) {
                pid_ = -1;
                return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
            }
            std::this_thread::sleep_for(5ms);
        }
        return -1;
    }

  private:
    pid_t pid_ = -1;
};

}  // namespace

TEST_CASE("vcard: ATR, power commands and APDUs over vpcd's framing") {
    FakeVpcd vpcd;
    Card card({"--port", std::to_string(vpcd.port), "--serial", "SERIAL-42"});
    Socket s = vpcd.accept_card();

    // Power on and reset get no answer; get ATR does.
    send_frame(s.get(), {0x01});
    send_frame(s.get(), {0x02});
    const Bytes atr = exchange(s.get(), {0x04});
    CHECK(hbsd::to_hex(atr) == hbsd::test::PcscRig::atr_for_serial("SERIAL-42"));
    CHECK(atr.size() == 4 + 9 + 1);

    // SELECT by the card's AID, by the MF, and something it does not have.
    CHECK(exchange(s.get(), {0x00, 0xA4, 0x04, 0x00, 0x08, 0xA0, 0x00, 0x00, 0x06, 0x48, 0x42, 0x53,
                             0x44, 0x00}) == Bytes{0x90, 0x00});
    CHECK(exchange(s.get(), {0x00, 0xA4, 0x00, 0x00, 0x02, 0x3F, 0x00}) == Bytes{0x90, 0x00});
    CHECK(exchange(s.get(), {0x00, 0xA4, 0x04, 0x00, 0x02, 0xD2, 0x76}) == Bytes{0x6A, 0x82});
    // GET DATA: the serial, or "referenced data not found".
    const std::string serial = "SERIAL-42";
    Bytes expected(serial.begin(), serial.end());
    expected.insert(expected.end(), {0x90, 0x00});
    CHECK(exchange(s.get(), {0x00, 0xCA, 0x01, 0x01, 0x00}) == expected);
    CHECK(exchange(s.get(), {0x00, 0xCA, 0x9F, 0x7F, 0x00}) == Bytes{0x6A, 0x88});
    // What it does not understand.
    CHECK(exchange(s.get(), {0x00, 0x20, 0x00, 0x81}) == Bytes{0x6D, 0x00});
    CHECK(exchange(s.get(), {0x80, 0xCA, 0x01, 0x01, 0x00}) == Bytes{0x6E, 0x00});
    CHECK(exchange(s.get(), {0x00, 0xA4, 0x04}) == Bytes{0x67, 0x00});
    CHECK(exchange(s.get(), {0x00, 0xA4, 0x04, 0x00, 0x09, 0xA0}) == Bytes{0x67, 0x00});
    send_frame(s.get(), {0x00});  // power off: no answer, and the card stays connected
    CHECK(exchange(s.get(), {0x04}) == atr);

    // SIGTERM is the removal: a clean exit and a closed connection.
    CHECK(card.terminate() == 0);
    CHECK_FALSE(receive_frame(s.get()).has_value());
}

TEST_CASE("vcard: --atr replaces the ATR") {
    FakeVpcd vpcd;
    Card card({"--port", std::to_string(vpcd.port), "--atr", "3B 02 14 50"});
    Socket s = vpcd.accept_card();
    CHECK(exchange(s.get(), {0x04}) == Bytes{0x3B, 0x02, 0x14, 0x50});
    CHECK(card.terminate() == 0);
}

TEST_CASE("vcard: stays in the reader while vpcd restarts, leaves with --once") {
    FakeVpcd vpcd;
    {
        Card card({"--port", std::to_string(vpcd.port), "--serial", "STAYS"});
        {
            Socket first = vpcd.accept_card();
            CHECK(hbsd::to_hex(exchange(first.get(), {0x04})) ==
                  hbsd::test::PcscRig::atr_for_serial("STAYS"));
        }  // vpcd drops the connection, as when pcscd stops
        Socket second = vpcd.accept_card();
        CHECK(hbsd::to_hex(exchange(second.get(), {0x04})) ==
              hbsd::test::PcscRig::atr_for_serial("STAYS"));
        CHECK(card.terminate() == 0);
    }
    {
        Card card({"--port", std::to_string(vpcd.port), "--once"});
        { Socket only = vpcd.accept_card(); }
        CHECK(card.terminate() == 0);  // exited by itself already, or exits now: status 0
    }
}

TEST_CASE("vcard: SIGTERM before vpcd listens still exits cleanly") {
    // A port nobody listens on: the card keeps trying to connect.
    FakeVpcd vpcd;
    const unsigned port = vpcd.port;
    vpcd.listener = Socket();
    Card card({"--port", std::to_string(port)});
    std::this_thread::sleep_for(100ms);  // setup: inside its retry wait
    CHECK(card.terminate() == 0);
}
