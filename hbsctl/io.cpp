#include "hbsctl/io.hpp"

#include "protocol/unique_fd.hpp"

#include <fcntl.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <iterator>
#include <sstream>

namespace hbsd::hbsctl {

std::string read_input(const std::string& path) {
    if (path == "-") {
        std::ostringstream s;
        s << std::cin.rdbuf();
        return s.str();
    }
    std::ifstream in(path, std::ios::binary);
    if (!in) throw InputError(path + ": " + std::strerror(errno));
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_output(const std::string& path, const std::string& data) {
    if (path == "-") {
        std::cout.write(data.data(), static_cast<std::streamsize>(data.size()));
        std::cout.flush();
        return;
    }
    const std::string tmp = path + ".tmp";
    {
        std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
        if (!out) throw InputError(tmp + ": " + std::strerror(errno));
        out.write(data.data(), static_cast<std::streamsize>(data.size()));
        out.flush();
        if (!out) throw InputError(tmp + ": write failed");
    }
    if (std::rename(tmp.c_str(), path.c_str()) != 0) {
        const int e = errno;
        std::remove(tmp.c_str());
        throw InputError(path + ": " + std::strerror(e));
    }
}

std::string read_pin_fd(int fd) {
    std::string pin;
    char c;
    for (;;) {
        const ssize_t n = ::read(fd, &c, 1);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) throw PinError(std::string("--pin-fd: ") + std::strerror(errno));
        if (n == 0 || c == '\n') break;
        if (pin.size() > 256) throw PinError("--pin-fd: PIN too long");
        pin.push_back(c);
    }
    if (!pin.empty() && pin.back() == '\r') pin.pop_back();
    return pin;
}

namespace {

// Restores the terminal mode it saved, however the scope is left.
class EchoOff {
  public:
    explicit EchoOff(int fd) : fd_(fd) {
        if (::tcgetattr(fd_, &saved_) != 0) throw PinError("cannot read the terminal mode");
        termios t = saved_;
        t.c_lflag &= ~static_cast<tcflag_t>(ECHO);
        t.c_lflag |= ICANON;
        if (::tcsetattr(fd_, TCSAFLUSH, &t) != 0) throw PinError("cannot turn echo off");
    }
    ~EchoOff() { ::tcsetattr(fd_, TCSAFLUSH, &saved_); }
    EchoOff(const EchoOff&) = delete;
    EchoOff& operator=(const EchoOff&) = delete;

  private:
    int fd_;
    termios saved_{};
};

}  // namespace

std::string read_pin_tty(const std::string& prompt) {
    UniqueFd tty(::open("/dev/tty", O_RDWR | O_CLOEXEC | O_NOCTTY));
    if (!tty) throw PinError("no terminal to ask for the PIN: use --pin-fd N");
    if (::write(tty.get(), prompt.data(), prompt.size()) < 0) {
        // The prompt is a courtesy; the read below still works.
    }
    std::string pin;
    {
        EchoOff off(tty.get());
        pin = read_pin_fd(tty.get());
    }
    if (::write(tty.get(), "\n", 1) < 0) {
    }
    return pin;
}

}  // namespace hbsd::hbsctl
