// hbsd-vcard: a minimal emulated smart card for vsmartcard's vpcd reader driver.
//
// Debian 12's packaged `vicc` does not start, so the tests bring their own card. vpcd (the IFD
// handler loaded by pcscd) listens on TCP; a card "is inserted" while it is connected and "is
// removed" when it disconnects. Every message either way is a 2-byte big-endian length and a
// body. A 1-byte body from vpcd is a control command (0x00 power off, 0x01 power on, 0x02 reset:
// no answer; 0x04 get ATR: answer with the ATR); any longer body is a command APDU, answered
// with a response APDU.
//
// The card answers:
//   SELECT (00 A4) by AID of --aid, or the MF (P1=00, empty or 3F00)       -> 90 00
//   SELECT anything else                                                   -> 6A 82
//   GET DATA (00 CA) P1P2 = 01 01: the serial (ASCII)                      -> serial 90 00
//   GET DATA other P1P2                                                    -> 6A 88
//   other INS -> 6D 00, other CLA -> 6E 00
// The default ATR carries the serial in its historical bytes (3B 8K 80 01 <serial> TCK), so a
// watcher that only reads ATRs can still tell two cards apart.
//
// Usage: hbsd-vcard --port N [--host H] [--serial S] [--atr HEX] [--aid HEX] [--once]
// It keeps reconnecting while the reader is away (pcscd restarting) as a card left in a
// reader would, unless --once. SIGTERM or SIGINT = removal: it disconnects and exits 0.
#include <arpa/inet.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace {

using Bytes = std::vector<std::uint8_t>;

volatile sig_atomic_t g_stop = 0;

void on_signal(int) {
    g_stop = 1;
}

struct Options {
    std::string host = "127.0.0.1";
    unsigned port = 0;
    std::string serial = "HBSD0001";
    std::optional<Bytes> atr;
    Bytes aid = {0xA0, 0x00, 0x00, 0x06, 0x48, 0x42, 0x53, 0x44};  // made up: "HBSD"
    bool once = false;
    bool verbose = false;
};

std::optional<Bytes> parse_hex(std::string_view hex) {
    Bytes out;
    int high = -1;
    for (char c : hex) {
        if (c == ' ' || c == ':') continue;
        int v;
        if (c >= '0' && c <= '9')
            v = c - '0';
        else if (c >= 'a' && c <= 'f')
            v = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            v = c - 'A' + 10;
        else
            return std::nullopt;
        if (high < 0) {
            high = v;
        } else {
            out.push_back(static_cast<std::uint8_t>(high << 4 | v));
            high = -1;
        }
    }
    if (high >= 0) return std::nullopt;
    return out;
}

// T0 = 0x80|K: TD1 follows; TD1 = 0x80: T=0, TD2 follows; TD2 = 0x01: T=1, nothing follows.
// Offering T=1 makes the check byte TCK (XOR of T0..last historical byte) mandatory.
Bytes atr_with_historical_bytes(std::string_view historical) {
    if (historical.size() > 15) historical = historical.substr(0, 15);
    Bytes atr = {0x3B, static_cast<std::uint8_t>(0x80 | historical.size()), 0x80, 0x01};
    atr.insert(atr.end(), historical.begin(), historical.end());
    std::uint8_t tck = 0;
    for (std::size_t i = 1; i < atr.size(); ++i) tck ^= atr[i];
    atr.push_back(tck);
    return atr;
}

Bytes status(std::uint16_t sw, Bytes data = {}) {
    data.push_back(static_cast<std::uint8_t>(sw >> 8));
    data.push_back(static_cast<std::uint8_t>(sw & 0xFF));
    return data;
}

Bytes answer(const Options& opt, const Bytes& apdu) {
    if (apdu.size() < 4) return status(0x6700);
    const std::uint8_t cla = apdu[0], ins = apdu[1], p1 = apdu[2], p2 = apdu[3];
    if (cla != 0x00) return status(0x6E00);
    // Lc (short form only: the card never needs extended length).
    Bytes data;
    if (apdu.size() > 5) {
        std::size_t lc = apdu[4];
        if (apdu.size() < 5 + lc) return status(0x6700);
        data.assign(apdu.begin() + 5, apdu.begin() + 5 + static_cast<std::ptrdiff_t>(lc));
    }
    switch (ins) {
        case 0xA4:  // SELECT
            if (p1 == 0x04 && data == opt.aid) return status(0x9000);
            if (p1 == 0x00 && (data.empty() || data == Bytes{0x3F, 0x00})) return status(0x9000);
            return status(0x6A82);
        case 0xCA:  // GET DATA
            if (p1 == 0x01 && p2 == 0x01)
                return status(0x9000, Bytes(opt.serial.begin(), opt.serial.end()));
            return status(0x6A88);
        default:
            return status(0x6D00);
    }
}

// Waits until `fd` is ready for `events` or a stop signal arrives. SIGTERM is blocked except
// inside ppoll, so a signal can never slip in between the check of g_stop and the wait.
bool wait_ready(int fd, short events, const sigset_t& unblocked) {
    pollfd p{fd, events, 0};
    while (!g_stop) {
        int r = ppoll(&p, 1, nullptr, &unblocked);
        if (r > 0) return true;
        if (r < 0 && errno != EINTR) return false;
    }
    return false;
}

bool read_all(int fd, std::uint8_t* buf, std::size_t n, const sigset_t& unblocked) {
    while (n > 0) {
        if (!wait_ready(fd, POLLIN, unblocked)) return false;
        ssize_t r = recv(fd, buf, n, 0);
        if (r <= 0) {
            if (r < 0 && errno == EINTR) continue;
            return false;  // vpcd closed: the reader is gone
        }
        buf += r;
        n -= static_cast<std::size_t>(r);
    }
    return true;
}

bool send_message(int fd, const Bytes& body) {
    if (body.size() > 0xFFFF) return false;
    Bytes frame = {static_cast<std::uint8_t>(body.size() >> 8),
                   static_cast<std::uint8_t>(body.size() & 0xFF)};
    frame.insert(frame.end(), body.begin(), body.end());
    std::size_t sent = 0;
    while (sent < frame.size()) {
        ssize_t r = send(fd, frame.data() + sent, frame.size() - sent, MSG_NOSIGNAL);
        if (r < 0) {
            if (errno == EINTR) continue;
            return false;
        }
        sent += static_cast<std::size_t>(r);
    }
    return true;
}

int connect_once(const Options& opt) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    addrinfo* res = nullptr;
    const std::string port = std::to_string(opt.port);
    if (getaddrinfo(opt.host.c_str(), port.c_str(), &hints, &res) != 0) return -1;
    int fd = -1;
    for (addrinfo* a = res; a; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0) continue;
        if (connect(fd, a->ai_addr, a->ai_addrlen) == 0) break;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    return fd;
}

// Serves one connection until vpcd closes it (returns true) or a stop signal arrives (false).
bool serve(int fd, const Options& opt, const Bytes& atr, const sigset_t& unblocked) {
    bool powered = false;
    for (;;) {
        std::uint8_t len[2];
        if (!read_all(fd, len, 2, unblocked)) return !g_stop;
        const std::size_t n = static_cast<std::size_t>(len[0] << 8 | len[1]);
        Bytes body(n);
        if (n > 0 && !read_all(fd, body.data(), n, unblocked)) return !g_stop;
        if (n == 1) {
            switch (body[0]) {
                case 0x00:
                    powered = false;
                    break;
                case 0x01:
                case 0x02:
                    powered = true;
                    break;
                case 0x04:
                    if (!send_message(fd, atr)) return !g_stop;
                    break;
                default:
                    std::fprintf(stderr, "hbsd-vcard: unknown control 0x%02X\n", body[0]);
            }
            continue;
        }
        const Bytes response = answer(opt, body);
        if (opt.verbose)
            std::fprintf(stderr, "hbsd-vcard: APDU INS %02X -> %02X%02X (powered %d)\n",
                         n > 1 ? body[1] : 0, response[response.size() - 2], response.back(),
                         powered ? 1 : 0);
        if (!send_message(fd, response)) return !g_stop;
    }
}

[[noreturn]] void usage() {
    std::fprintf(stderr,
                 "usage: hbsd-vcard --port N [--host H] [--serial S] [--atr HEX] [--aid HEX]"
                 " [--once] [--verbose]\n");
    std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
    Options opt;
    for (int i = 1; i < argc; ++i) {
        const std::string_view a = argv[i];
        auto value = [&]() -> std::string_view {
            if (i + 1 >= argc) usage();
            return argv[++i];
        };
        if (a == "--port") {
            const std::string v(value());
            char* end = nullptr;
            unsigned long p = std::strtoul(v.c_str(), &end, 0);
            if (!end || *end || p == 0 || p > 65535) usage();
            opt.port = static_cast<unsigned>(p);
        } else if (a == "--host") {
            opt.host = value();
        } else if (a == "--serial") {
            opt.serial = value();
        } else if (a == "--atr") {
            opt.atr = parse_hex(value());
            if (!opt.atr || opt.atr->size() < 2 || opt.atr->size() > 33) usage();
        } else if (a == "--aid") {
            auto aid = parse_hex(value());
            if (!aid || aid->empty() || aid->size() > 16) usage();
            opt.aid = *aid;
        } else if (a == "--once") {
            opt.once = true;
        } else if (a == "--verbose") {
            opt.verbose = true;
        } else {
            usage();
        }
    }
    if (opt.port == 0) usage();
    const Bytes atr = opt.atr ? *opt.atr : atr_with_historical_bytes(opt.serial);

    sigset_t blocked, unblocked;
    sigemptyset(&blocked);
    sigaddset(&blocked, SIGTERM);
    sigaddset(&blocked, SIGINT);
    sigprocmask(SIG_BLOCK, &blocked, &unblocked);
    sigdelset(&unblocked, SIGTERM);
    sigdelset(&unblocked, SIGINT);
    struct sigaction sa {};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, nullptr);
    sigaction(SIGINT, &sa, nullptr);

    bool announced = false;
    while (!g_stop) {
        int fd = connect_once(opt);
        if (fd < 0) {
            // vpcd is not listening (yet, or any more): wait a little, interruptibly.
            timespec delay{0, 50 * 1000 * 1000};
            pselect(0, nullptr, nullptr, nullptr, &delay, &unblocked);
            continue;
        }
        if (!announced || opt.verbose) {
            // The rig does not depend on this line; it is for people reading test logs.
            std::fprintf(stderr, "hbsd-vcard: inserted on %s:%u\n", opt.host.c_str(), opt.port);
            announced = true;
        }
        const bool reader_went_away = serve(fd, opt, atr, unblocked);
        close(fd);
        if (!reader_went_away || opt.once) break;
    }
    return 0;
}
