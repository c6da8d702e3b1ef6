#include "tests/support/vcard/rig.hpp"

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include <winscard.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>
#include <vector>

#include "hsm/pcsc/handles.hpp"
#include "protocol/hex.hpp"

extern char** environ;

namespace hbsd::test {

namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

[[noreturn]] void fail(const std::string& what) {
    throw std::runtime_error("pcsc rig: " + what);
}

// vpcd could not listen on its port: pcscd runs, without the reader.
struct PortTaken : std::runtime_error {
    using std::runtime_error::runtime_error;
};

std::string errno_text(const char* call) {
    return std::string(call) + ": " + std::strerror(errno);
}

// A file descriptor owned by the rig.
class Fd {
  public:
    explicit Fd(int fd = -1) noexcept : fd_(fd) {}
    ~Fd() {
        if (fd_ >= 0) ::close(fd_);
    }
    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
    int get() const noexcept { return fd_; }

  private:
    int fd_;
};

// Both vpcd ports free? vpcd binds INADDR_ANY with SO_REUSEADDR; probe the same way.
bool ports_free(unsigned base) {
    for (unsigned p = base; p < base + PcscRig::slots; ++p) {
        Fd s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
        if (s.get() < 0) return false;
        int yes = 1;
        ::setsockopt(s.get(), SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_port = htons(static_cast<std::uint16_t>(p));
        a.sin_addr.s_addr = htonl(INADDR_ANY);
        if (::bind(s.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) return false;
    }
    return true;
}

// Below Linux's ephemeral range (32768-60999 by default): a port in it can be the local end of
// any outgoing connection on the machine (another test's card, say), and vpcd's bind fails.
constexpr unsigned first_port = 20000, port_range = 12000;

// `attempt` moves the search on after a pair turned out to be taken after all.
unsigned pick_ports(unsigned attempt) {
    // HBSD_PCSC_RIG_PORT pins the first attempt, unprobed: for reading a failing test's traffic
    // at a known port, and for testing the fallback below.
    if (const char* pinned = std::getenv("HBSD_PCSC_RIG_PORT"); pinned && attempt == 0)
        return static_cast<unsigned>(std::strtoul(pinned, nullptr, 10));
    // Spread processes over the range by pid so that parallel tests rarely even probe the same
    // pair; the probe settles the rest.
    const unsigned offset =
        (static_cast<unsigned>(::getpid()) * 7 + attempt * 101) * PcscRig::slots % port_range;
    for (unsigned i = 0; i < port_range / PcscRig::slots; ++i) {
        const unsigned base = first_port + (offset + i * PcscRig::slots) % port_range;
        if (ports_free(base)) return base;
    }
    fail("no free TCP port pair for vpcd in 20000-31999");
}

// fork + execve with everything prepared beforehand: the test process has threads, so the child
// may only make async-signal-safe calls before exec.
pid_t spawn(const std::vector<std::string>& args, const std::vector<std::string>& extra_env,
            int out_fd, int listen_fd) {
    std::vector<std::string> env_strings;
    for (char** e = environ; *e; ++e) {
        const std::string_view kv = *e;
        bool overridden = false;
        for (const auto& x : extra_env)
            if (kv.substr(0, kv.find('=') + 1) == x.substr(0, x.find('=') + 1)) overridden = true;
        if (!overridden) env_strings.emplace_back(kv);
    }
    env_strings.insert(env_strings.end(), extra_env.begin(), extra_env.end());
    std::vector<char*> argv, envp;
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    for (const auto& e : env_strings) envp.push_back(const_cast<char*>(e.c_str()));
    envp.push_back(nullptr);

    const pid_t pid = ::fork();
    if (pid < 0) fail(errno_text("fork"));
    if (pid == 0) {
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, nullptr);
        int devnull = ::open("/dev/null", O_RDONLY);
        if (devnull >= 0) ::dup2(devnull, 0);
        ::dup2(out_fd, 1);
        ::dup2(out_fd, 2);
        int keep = 3;
        if (listen_fd >= 0) {
            // The systemd convention: the first passed socket is fd 3, inheritable.
            if (listen_fd == 3)
                ::fcntl(3, F_SETFD, 0);
            else
                ::dup2(listen_fd, 3);
            keep = 4;
        }
        ::syscall(SYS_close_range, keep, ~0U, 0);
        ::execve(argv[0], argv.data(), envp.data());
        _exit(127);
    }
    return pid;
}

// SIGTERM, wait up to `grace`, then SIGKILL. Always reaps.
void terminate(pid_t pid, std::chrono::milliseconds grace) {
    if (pid <= 0) return;
    ::kill(pid, SIGTERM);
    const auto deadline = Clock::now() + grace;
    while (Clock::now() < deadline) {
        int status = 0;
        const pid_t r = ::waitpid(pid, &status, WNOHANG);
        if (r == pid || (r < 0 && errno == ECHILD)) return;
        std::this_thread::sleep_for(5ms);
    }
    ::kill(pid, SIGKILL);
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
}

bool exited(pid_t pid) {
    int status = 0;
    const pid_t r = ::waitpid(pid, &status, WNOHANG);
    return r == pid || (r < 0 && errno == ECHILD);
}

std::vector<std::string> list_readers(const hsm::pcsc::ScardContext& ctx, LONG& rv) {
    std::vector<std::string> names;
    DWORD size = 0;
    rv = SCardListReaders(ctx.get(), nullptr, nullptr, &size);
    if (rv != SCARD_S_SUCCESS) return names;
    std::string buf(size, '\0');
    rv = SCardListReaders(ctx.get(), nullptr, buf.data(), &size);
    if (rv != SCARD_S_SUCCESS) return names;
    for (std::size_t pos = 0; pos < buf.size() && buf[pos] != '\0';) {
        const std::size_t end = buf.find('\0', pos);
        names.emplace_back(buf, pos, end - pos);
        pos = end + 1;
    }
    return names;
}

}  // namespace

const std::string& PcscRig::socket_path() {
    static const std::string path = [] {
        std::string p = "/tmp/hbsd-pcscd-" + std::to_string(::getpid()) + ".comm";
        ::setenv("PCSCLITE_CSOCK_NAME", p.c_str(), 1);
        return p;
    }();
    return path;
}

PcscRig::PcscRig(PcscRigOptions options) : options_(std::move(options)) {
    (void)socket_path();  // before any libpcsclite call of this process
    std::string templ = (std::filesystem::temp_directory_path() / "hbsd-pcsc-rig-XXXXXX").string();
    if (!::mkdtemp(templ.data())) fail(errno_text("mkdtemp"));
    dir_ = templ;
    std::filesystem::create_directories(dir_ / "reader.conf.d");
    base_port_ = pick_ports(0);
    write_config();
    if (!options_.start) return;
    try {
        // The probe and vpcd's bind are apart in time; if another program took the pair in
        // between, pick another one (no card knows the ports yet).
        for (unsigned attempt = 1;; ++attempt) {
            try {
                start_pcscd();
                break;
            } catch (const PortTaken&) {
                if (attempt == 5) throw;
                base_port_ = pick_ports(attempt);
                configure_reader(options_.with_reader);
            }
        }
    } catch (...) {
        std::error_code ec;
        std::filesystem::remove_all(dir_, ec);
        throw;
    }
}

PcscRig::~PcscRig() {
    for (unsigned slot = 0; slot < slots; ++slot) {
        terminate(cards_[slot], 2000ms);
        cards_[slot] = -1;
    }
    terminate(pcscd_, 5000ms);
    pcscd_ = -1;
    ::unlink(socket_path().c_str());
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
}

std::string PcscRig::reader(unsigned slot) const {
    char suffix[16];
    std::snprintf(suffix, sizeof suffix, " 00 %02X", slot);
    return options_.friendly_name + suffix;
}

unsigned PcscRig::port(unsigned slot) const {
    return base_port_ + slot;
}

void PcscRig::configure_reader(bool with_reader) {
    options_.with_reader = with_reader;
    std::filesystem::remove(dir_ / "reader.conf.d" / "vpcd");
    write_config();
}

void PcscRig::write_config() const {
    if (!options_.with_reader) return;
    std::ofstream conf(dir_ / "reader.conf.d" / "vpcd");
    char port_hex[16];
    std::snprintf(port_hex, sizeof port_hex, "0x%04X", base_port_);
    // DEVICENAME /dev/null:<port> puts vpcd in server mode on <port> (and <port>+1 for slot 1).
    conf << "FRIENDLYNAME \"" << options_.friendly_name << "\"\n"
         << "DEVICENAME   /dev/null:" << port_hex << "\n"
         << "LIBPATH      " << HBSD_VPCD_DRIVER << "\n"
         << "CHANNELID    " << port_hex << "\n";
    if (!conf) fail("cannot write reader.conf.d/vpcd");
}

void PcscRig::start_pcscd() {
    if (pcscd_ > 0) return;
    const std::string& path = socket_path();
    ::unlink(path.c_str());
    Fd listener(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (listener.get() < 0) fail(errno_text("socket"));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (path.size() >= sizeof addr.sun_path) fail("socket path too long: " + path);
    std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
    if (::bind(listener.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
        fail(errno_text("bind") + " " + path);
    ::chmod(path.c_str(), 0666);
    if (::listen(listener.get(), 64) != 0) fail(errno_text("listen"));

    Fd log(::open((dir_ / "pcscd.log").c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644));
    if (log.get() < 0) fail(errno_text("open pcscd.log"));
    log_offset_ = static_cast<std::size_t>(::lseek(log.get(), 0, SEEK_END));
    const std::string conf_dir = (dir_ / "reader.conf.d").string();
    // LISTEN_PID must be the pid of pcscd itself: a shell knows its own ($$) and exec keeps it.
    pcscd_ = spawn({"/bin/sh", "-c", "LISTEN_PID=$$; export LISTEN_PID; exec \"$@\"", "sh",
                    HBSD_PCSCD, "--foreground", "--info", "-c", conf_dir},
                   {"LISTEN_FDS=1"}, log.get(), listener.get());
    // pcscd holds the socket now; ours closes with `listener`, so the path refuses
    // connections (SCARD_E_NO_SERVICE) as soon as pcscd exits, as a real stop does.
    wait_ready();
}

void PcscRig::wait_ready() {
    const auto deadline = Clock::now() + options_.timeout;
    std::vector<std::string> expected;
    if (options_.with_reader)
        for (unsigned slot = 0; slot < slots; ++slot) expected.push_back(reader(slot));
    std::string last = "no answer";
    while (Clock::now() < deadline) {
        if (exited(pcscd_)) {
            pcscd_ = -1;
            fail("pcscd exited during start-up; its log:\n" + pcscd_log());
        }
        hsm::pcsc::ScardContext ctx;
        LONG rv = ctx.establish();
        if (rv == SCARD_S_SUCCESS) {
            const auto names = list_readers(ctx, rv);
            bool all = true;
            for (const auto& e : expected)
                if (std::find(names.begin(), names.end(), e) == names.end()) all = false;
            if (all && (rv == SCARD_S_SUCCESS || expected.empty())) return;
            last =
                "readers listed: " + std::to_string(names.size()) + ", " + pcsc_stringify_error(rv);
        } else {
            last = pcsc_stringify_error(rv);
        }
        if (!expected.empty() && pcscd_log().find(options_.friendly_name + " init failed",
                                                  log_offset_) != std::string::npos) {
            // Nothing will bring the reader now; say so at once rather than at the deadline.
            stop_pcscd();
            throw PortTaken("pcsc rig: vpcd could not open its port " + std::to_string(base_port_) +
                            "; pcscd's log:\n" + pcscd_log());
        }
        std::this_thread::sleep_for(20ms);
    }
    fail("pcscd not ready (" + last + "); its log:\n" + pcscd_log());
}

void PcscRig::stop_pcscd(int signal) {
    if (pcscd_ > 0 && signal != SIGTERM) ::kill(pcscd_, signal);
    terminate(pcscd_, 5000ms);
    pcscd_ = -1;
}

std::string PcscRig::pcscd_log() const {
    std::ifstream in(dir_ / "pcscd.log");
    std::ostringstream out;
    out << in.rdbuf();
    return out.str();
}

void PcscRig::insert(unsigned slot, const std::string& serial, const std::string& atr_hex) {
    if (slot >= slots) fail("no slot " + std::to_string(slot));
    if (cards_[slot] > 0) fail("slot " + std::to_string(slot) + " already has a card");
    Fd log(::open((dir_ / ("card-" + std::to_string(slot) + ".log")).c_str(),
                  O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644));
    if (log.get() < 0) fail(errno_text("open card log"));
    std::vector<std::string> args = {HBSD_VCARD, "--port", std::to_string(port(slot)), "--serial",
                                     serial};
    if (!atr_hex.empty()) {
        args.push_back("--atr");
        args.push_back(atr_hex);
    }
    cards_[slot] = spawn(args, {}, log.get(), -1);
}

void PcscRig::remove(unsigned slot) {
    if (slot >= slots) fail("no slot " + std::to_string(slot));
    terminate(cards_[slot], 2000ms);
    cards_[slot] = -1;
}

std::string PcscRig::atr_for_serial(const std::string& serial) {
    const std::string hist = serial.substr(0, 15);
    std::vector<unsigned char> atr = {0x3B, static_cast<unsigned char>(0x80 | hist.size()), 0x80,
                                      0x01};
    atr.insert(atr.end(), hist.begin(), hist.end());
    unsigned char tck = 0;
    for (std::size_t i = 1; i < atr.size(); ++i) tck ^= atr[i];
    atr.push_back(tck);
    return hbsd::to_hex(atr);
}

bool PcscRig::wait_card(unsigned slot, bool present, std::chrono::milliseconds timeout) const {
    const auto deadline = Clock::now() + timeout;
    const std::string name = reader(slot);
    while (Clock::now() < deadline) {
        hsm::pcsc::ScardContext ctx;
        if (ctx.establish() != SCARD_S_SUCCESS) {
            std::this_thread::sleep_for(20ms);
            continue;
        }
        SCARD_READERSTATE rs{};
        rs.szReader = name.c_str();
        rs.dwCurrentState = SCARD_STATE_UNAWARE;
        while (Clock::now() < deadline) {
            const auto left =
                std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
            const LONG rv = SCardGetStatusChange(
                ctx.get(), static_cast<DWORD>(std::max<long long>(left.count(), 1)), &rs, 1);
            if (rv == SCARD_E_TIMEOUT) return false;
            if (rv != SCARD_S_SUCCESS) break;
            const bool is_present = (rs.dwEventState & SCARD_STATE_PRESENT) != 0;
            if (is_present == present) return true;
            rs.dwCurrentState = rs.dwEventState & ~static_cast<DWORD>(SCARD_STATE_CHANGED);
        }
        std::this_thread::sleep_for(20ms);
    }
    return false;
}

}  // namespace hbsd::test
